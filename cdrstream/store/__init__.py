"""The Redis store of Call Data Records: the layout (``layout.py``), the compact record
encoding (``codec.py``), the write path (``writer.py``), the read path (``reader.py``,
``cursor.py``) and the window (``sweeper.py``). Works on a single Redis and on Redis
Cluster alike (``connection.py``)."""
