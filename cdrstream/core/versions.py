"""Which of two versions of one call is kept (contract §2: one record per call).

Two events for the same (tenant, call) are two versions of one record. The store keeps
the **later** version, whatever order the events are read in: a rebuild replays old
events beside the live workers, a partition move or a producer retry redelivers, and an
older version must never replace a newer one. "Later" is, in this order:

1. the later ``ended_at``: a PBX's corrected or final CDR of a call ends no earlier than
   the one it corrects, and it is the PBX's own clock, the same for every producer;
2. then the later **event time**: the Kafka timestamp the event was produced with (a
   re-rated CDR with the same end, an adapter's re-post of a changed call);
3. on a tie of both, the version written last.

A message without a timestamp has event time 0. The store compares versions inside its
write script (``store/scripts.py``, ``older``); this module is the rule it implements,
and the tests hold the script to it.
"""

from __future__ import annotations

from typing import NamedTuple

from cdrstream.core.record import CallRecord


class Version(NamedTuple):
    """Compared as a tuple: ``ended_at_ms`` first, then ``event_ms``."""

    ended_at_ms: int
    event_ms: int


def version_of(record: CallRecord, event_ms: int | None) -> Version:
    """The version of ``record``, built from an event produced at ``event_ms``."""
    return Version(record.ended_at_ms, max(event_ms or 0, 0))


def replaces(new: Version, stored: Version) -> bool:
    """Whether a version written after ``stored`` takes its place (ties: the last wins)."""
    return new >= stored
