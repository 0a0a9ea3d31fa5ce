"""Prometheus metrics of the adapters. Labels are bounded: the source (``freeswitch``,
``asterisk_csv``, ``asterisk_ami``) and a result word, never a tenant, a field or a number."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SOURCES = ("freeswitch", "asterisk_csv", "asterisk_ami")
RESULTS = ("produced", "skipped", "rejected", "unavailable")

CDRS = Counter(
    "cdrstream_ingest_cdrs_total",
    "PBX CDRs received, by source and result: produced (an event acknowledged by Kafka), "
    "skipped (not a PSTN leg), rejected (unreadable: 400 or a dead letter), unavailable "
    "(Kafka did not acknowledge: 503, the PBX retries).",
    ["source", "result"],
)
DEAD_LETTERS = Counter(
    "cdrstream_ingest_dead_letters_total",
    "Unreadable CDR rows written to the dead-letter topic, by source.",
    ["source"],
)
PRODUCE = Histogram(
    "cdrstream_ingest_produce_seconds",
    "Event handed to Kafka to its acknowledgement.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
AMI_CONNECTED = Gauge(
    "cdrstream_ingest_ami_connected", "1 while logged in to the Asterisk manager, else 0."
)
CSV_POSITION = Gauge(
    "cdrstream_ingest_csv_position_bytes",
    "Byte offset of Master.csv up to which every row has been produced (the position file).",
)

for _source in SOURCES:
    for _result in RESULTS:
        CDRS.labels(_source, _result)
