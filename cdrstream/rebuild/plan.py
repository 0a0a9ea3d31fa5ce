"""What a rebuild reads and how it reports progress: pure decisions, no I/O.

- It starts at ``now - retention`` (or ``now - since`` when that is later): the first offset of
  each partition whose Kafka timestamp is at or after that time (offsets-for-times), and
  stops at the partitions' end offsets taken when it starts (events arriving later are the
  live workers' business).
- It refuses when the topic may keep less than the window: records older than the topic's
  ``retention.ms`` could not come back, a ``retention.bytes`` limit deletes the oldest
  segments whatever their age, and compaction (``cleanup.policy`` with ``compact``) keeps
  only the last event of each key, here of each tenant. A rebuild that quietly returns part
  of the window would look complete.
- With nothing to replay (an empty topic or window, a tenant without events) it says so and
  ends at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdrstream.core.clock import DAY_MS


@dataclass(frozen=True, slots=True)
class RetentionShortfall:
    topic_retention_ms: int
    window_ms: int

    @property
    def missing_ms(self) -> int:
        return self.window_ms - self.topic_retention_ms

    def message(self, topic: str) -> str:
        return (
            f"topic {topic} keeps {_days(self.topic_retention_ms)} of events, shorter than the"
            f" {_days(self.window_ms)} window by {_days(self.missing_ms)}: a rebuild cannot bring"
            " back what Kafka no longer has; raise the topic's retention.ms to at least"
            f" {self.window_ms}"
        )


@dataclass(frozen=True, slots=True)
class TopicRetention:
    """The topic's settings that decide how long Kafka keeps its events (as described)."""

    retention_ms: int | None = None  # None: the broker said nothing
    retention_bytes: int | None = None  # -1 or None: no size limit
    cleanup_policy: str = "delete"


def retention_refusal(topic: str, retention: TopicRetention, window_ms: int) -> str | None:
    """Why a rebuild of ``window_ms`` cannot be trusted to be complete on this topic, or None."""
    policies = {p.strip() for p in retention.cleanup_policy.lower().split(",")}
    if "compact" in policies:
        return (
            f"topic {topic} is compacted (cleanup.policy={retention.cleanup_policy}): Kafka"
            " keeps only the last event of each key (each tenant), so a rebuild cannot bring"
            " back the window; set cleanup.policy=delete"
        )
    if retention.retention_bytes is not None and retention.retention_bytes >= 0:
        return (
            f"topic {topic} keeps at most {retention.retention_bytes:,} bytes per partition"
            " (retention.bytes): Kafka deletes its oldest events past that size whatever"
            " their age, so the window may be incomplete; set retention.bytes=-1"
        )
    shortfall = retention_shortfall(retention.retention_ms, window_ms)
    return None if shortfall is None else shortfall.message(topic)


def retention_shortfall(
    topic_retention_ms: int | None, window_ms: int
) -> RetentionShortfall | None:
    """None when the topic keeps at least ``window_ms`` (-1 or absent: kept forever)."""
    if topic_retention_ms is None or topic_retention_ms < 0 or topic_retention_ms >= window_ms:
        return None
    return RetentionShortfall(topic_retention_ms, window_ms)


def start_time_ms(now_ms: int, retention_ms: int, since_ms: int | None) -> int:
    """The earliest Kafka timestamp a rebuild reads."""
    start = now_ms - retention_ms
    return start if since_ms is None else max(start, now_ms - since_ms)


def parse_duration_ms(text: str) -> int:
    """``90m``, ``36h``, ``7d``, ``2w`` or plain seconds -> milliseconds; ValueError otherwise."""
    units = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}
    text = text.strip().lower()
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    if not number.isascii() or not number.isdigit() or int(number) <= 0:
        raise ValueError(f"not a duration: {text!r} (examples: 90m, 36h, 7d)")
    return int(number) * units[unit]


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        return None if rate <= 0 else max(0.0, (self.total - self.done) / rate)

    def line(self) -> str:
        """One plain progress line (logs, pipes)."""
        eta = "?" if self.eta_s is None else f"{self.eta_s:.0f}s"
        share = 100.0 if self.total == 0 else 100.0 * min(self.done, self.total) / self.total
        return (
            f"rebuild: {self.done:,}/{self.total:,} events ({share:.1f}%),"
            f" {self.rate:,.0f} events/s, ETA {eta}"
        )

    def bar(self, width: int = 30) -> str:
        """The same as a bar, for a terminal (redrawn in place)."""
        filled = width if self.total == 0 else width * min(self.done, self.total) // self.total
        return f"[{'#' * filled}{'.' * (width - filled)}] " + self.line().removeprefix("rebuild: ")


def nothing_to_replay(tenant: str | None, since_ms: int | None, read: int) -> str:
    """What a rebuild that replayed no event says."""
    scope = "the retention window" if since_ms is None else f"the last {since_ms / 1000:.0f}s"
    if tenant is None:
        return f"rebuild: nothing to replay: the topic holds no event from {scope}"
    return (
        f"rebuild: nothing to replay: no event of tenant {tenant} in {scope}"
        f" ({read:,} events of other tenants read on its partition)"
    )


def _days(ms: int) -> str:
    return f"{ms / DAY_MS:.1f} days"
