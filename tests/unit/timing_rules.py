"""Timing of the rules core (not a test: numbers vary by machine, nothing is asserted).

    .venv/bin/python -m tests.unit.timing_rules

Prints parses/s (`decode_event`), decide/s over a generated stream (caches warm, and with the
number caches empty at the start of the pass, as in a freshly started worker), the cost of one
valid event through `decide`, and of a cold `normalize_number`.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable

import orjson

from cdrstream.core.event import InvalidEvent, decode_event
from cdrstream.core.numbers import normalize_number
from cdrstream.core.outcome import Policy, decide
from cdrstream.simulation.calls import generate_events, valid_event

NOW = 1_795_594_443_120


def _best(fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def main() -> None:
    policy = Policy(retention_ms=30 * 86_400_000)
    values = [
        v
        for _, v in generate_events(
            random.Random(1), tenants=[f"t{i}" for i in range(50)], now_ms=NOW, count=50_000
        )
    ]

    def parse_all() -> None:
        for value in values:
            try:  # noqa: SIM105 (contextlib.suppress would be timed too)
                decode_event(value)
            except InvalidEvent:
                pass

    def decide_all() -> None:
        for value in values:
            decide(value, NOW, policy)

    def decide_all_fresh() -> None:
        normalize_number.cache_clear()
        decide_all()

    fresh_s = _best(decide_all_fresh)
    decide_all()  # warm the number caches
    gc.collect()
    parse_s = _best(parse_all)
    decide_s = _best(decide_all)
    print(f"decode_event: {len(values) / parse_s:,.0f} parses/s (generated stream)")
    print(f"decide:       {len(values) / decide_s:,.0f} decide/s (generated stream, warm)")
    print(f"decide:       {fresh_s / len(values) * 1e6:.1f} us/event (empty number caches)")

    one = orjson.dumps(valid_event(random.Random(2), "acme", NOW))
    decide(one, NOW, policy)
    n = 50_000
    single = _best(lambda: [decide(one, NOW, policy) for _ in range(n)]) / n
    print(f"decide, one valid event, warm: {single * 1e6:.1f} us")

    raws = [f"+3120{i:07d}" for i in range(2_000)]
    normalize_number.cache_clear()
    began = time.perf_counter()
    for raw in raws:
        normalize_number(raw, "NL")
    cold = (time.perf_counter() - began) / len(raws)
    print(f"normalize_number, cold: {cold * 1e6:.1f} us")


if __name__ == "__main__":
    main()
