"""Prometheus metrics of the worker (contract §7). No tenant id or number is ever a label."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from cdrstream import __version__
from cdrstream.core.outcome import OUTCOMES

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.175, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

EVENTS = Counter(
    "cdrstream_events_total",
    "Call-ended events consumed, by outcome (exactly one per event).",
    ["outcome"],
)
INVALID_REASONS = Counter(
    "cdrstream_invalid_events_total",
    "Invalid events by reason kind (the part of the reason before ':').",
    ["reason"],
)
DEAD_LETTERS = Counter("cdrstream_dead_letters_total", "Events written to the dead-letter topic.")
END_TO_END = Histogram(
    "cdrstream_end_to_end_latency_seconds",
    "Call ended (ended_at) to its record written in Redis.",
    buckets=(1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)
PRODUCE_TO_STORE = Histogram(
    "cdrstream_produce_to_store_seconds",
    "Event produced to Kafka (record timestamp) to its record queryable in Redis.",
    buckets=LATENCY_BUCKETS,
)
PROCESSING = Histogram(
    "cdrstream_processing_seconds",
    "Batch handed to the worker to batch fully written (rules, Redis, dead letters).",
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "cdrstream_batch_size",
    "Events per processed batch.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000),
)
REDIS_WRITE = Histogram(
    "cdrstream_redis_write_seconds", "One batch's Redis round trip.", buckets=LATENCY_BUCKETS
)
REDIS_ERRORS = Counter("cdrstream_redis_errors_total", "Failed Redis writes.")
DEAD_LETTER_ERRORS = Counter("cdrstream_dead_letter_errors_total", "Failed dead-letter sends.")
DEAD_LETTERS_REFUSED = Counter(
    "cdrstream_dead_letters_refused_total",
    "Dead letters the broker refused even without their original value (logged at ERROR).",
)
STUCK = Gauge(
    "cdrstream_worker_stuck_seconds",
    "How long the batch in hand has been in progress (0 when idle); /readyz fails past the"
    " stall threshold.",
)
KAFKA_CONTACT_AGE = Gauge(
    "cdrstream_worker_kafka_contact_age_seconds",
    "Seconds since a Kafka broker last answered the worker (a fetch with records, or a"
    " metadata round trip when the topic is quiet); /readyz fails past 15 s.",
)
UNDECODABLE_BATCHES = Counter(
    "cdrstream_undecodable_batches_total",
    "Record batches the consumer could not decode (unknown codec, corrupt), sent whole to the"
    " dead-letter topic as undecodable_batch.",
)
CONSUMER_LAG = Gauge(
    "cdrstream_consumer_lag",
    "Highwater minus committed offset, per assigned partition.",
    ["partition"],
)
RECORDS_IN_WINDOW = Gauge(
    "cdrstream_records_in_window", "Records inside the retention window, all tenants (sampled)."
)
SWEPT = Counter("cdrstream_swept_records_total", "Out-of-window records removed by the sweeper.")
BUILD = Info("cdrstream_build", "Version of the running cdrstream.")
BUILD.info({"version": __version__})

for _outcome in OUTCOMES:
    EVENTS.labels(_outcome)
