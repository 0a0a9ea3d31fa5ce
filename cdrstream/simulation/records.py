"""Realistic stored records, made directly (no events): for load tests and the benchmark."""

from __future__ import annotations

import random
import uuid

from cdrstream.core.clock import DAY_MS
from cdrstream.core.record import CallRecord, record_id


def synthetic_records(
    tenant: str, count: int, now_ms: int, rng: random.Random, span_ms: int = 29 * DAY_MS
) -> list[CallRecord]:
    """Realistic records that started in the ``span_ms`` before ``now_ms`` (29 days by
    default): NL/BE/DE numbers, 200 extensions."""
    window = span_ms
    prefixes = ["+3120", "+3110", "+3130", "+316", "+3223", "+4930", "+4989"]
    numbers = [f"{rng.choice(prefixes)}{rng.randrange(10**6, 10**7)}" for _ in range(20_000)]
    records = []
    for n in range(count):
        started = now_ms - rng.randrange(window)
        answered = started + rng.randrange(2_000, 20_000) if rng.random() < 0.8 else None
        ended = (answered or started) + rng.randrange(1_000, 600_000)
        inbound = rng.random() < 0.5
        ours, theirs = f"+3120{rng.randrange(1000000, 1000400)}", rng.choice(numbers)
        call_id = f"{uuid.UUID(int=rng.getrandbits(128))}@pbx.example.net"
        records.append(
            CallRecord(
                id=record_id(tenant, call_id),
                tenant_id=tenant,
                call_id=call_id,
                started_at_ms=started,
                answered_at_ms=answered,
                ended_at_ms=ended,
                duration=(ended - answered) // 1000 if answered else 0,
                source=theirs if inbound else ours,
                source_raw=theirs if inbound else f"sip:{ours}@pbx.example.net",
                destination=ours if inbound else theirs,
                destination_raw=ours if inbound else "0" + theirs[3:],
                extension=str(200 + n % 200) if rng.random() < 0.9 else "0",
                direction="inbound" if inbound else "outbound",
                disposition="answered" if answered else "no_answer",
            )
        )
    return records
