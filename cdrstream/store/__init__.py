"""The Redis store of Call Data Records, read top-down:

- ``layout.py``: every key and field, and why; ``codec.py``: a record's encoding;
  ``segment.py``: the sealed-day format (its only writer);
- ``lua/*.lua``: the scripts; ``scripts.py``: loads them and builds each one's KEYS and
  ARGV; ``runner.py``: runs commands and scripts in pipelines (EVALSHA, NOSCRIPT, stale
  connections); ``connection.py``: the client (single Redis or Redis Cluster);
- ``writer.py``: the write path; ``query.py`` and ``reader.py``, ``cursor.py``: the read
  path; ``sealer.py``, ``sweeper.py``, ``idmap.py``: sealing and the window;
- ``live.py``, ``summary.py``: the live tail and daily summaries the write script keeps.
"""
