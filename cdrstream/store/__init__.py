"""The Redis store of Call Data Records: the layout (``layout.py``: hot, sealed and legacy
tiers), the record encoding (``codec.py``), the sealed formats (``segment.py``), the Lua
scripts (``scripts.py``), the write path (``writer.py``), the read path (``reader.py``,
``cursor.py``), sealing (``sealer.py``), the window and upkeep (``sweeper.py``), the
migration from the previous layout (``migrate.py``, ``legacy.py``), and the live tail and
daily summaries kept by the write script (``live.py``, ``summary.py``). Works on a single
Redis and on Redis Cluster alike (``connection.py``)."""
