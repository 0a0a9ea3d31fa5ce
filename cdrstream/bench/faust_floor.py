"""A Faust agent that does nothing but count, over the benchmark's pre-filled topic.

Run by `cdrstream bench` as a second baseline: what faust-streaming itself delivers on this
machine with the worker's settings (raw values, ``take_events`` batches, uvloop), so the
worker's own cost can be told apart from the framework's.
Environment: BENCH_TOPIC, BENCH_GROUP, BENCH_BOOTSTRAP, BENCH_EVENTS. Prints ``eps=<float>``.
"""

from __future__ import annotations

import os
import time

import faust
from faust.types import StreamT

from cdrstream.cli import enable_crash_tracebacks
from cdrstream.kafka_connection import faust_credentials
from cdrstream.settings import load_settings


def main() -> None:
    enable_crash_tracebacks()
    total = int(os.environ["BENCH_EVENTS"])
    app = faust.App(
        os.environ["BENCH_GROUP"],
        broker=f"kafka://{os.environ['BENCH_BOOTSTRAP']}",
        broker_credentials=faust_credentials(load_settings()),
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    source = app.topic(os.environ["BENCH_TOPIC"], value_type=bytes, key_type=bytes)
    seen = {"n": 0, "first": 0.0}

    @app.agent(source)
    async def count(stream: StreamT) -> None:
        async for events in stream.take_events(2000, within=0.02):  # type: ignore[attr-defined]
            seen["first"] = seen["first"] or time.perf_counter()
            seen["n"] += len(events)
            if seen["n"] >= total:
                print(f"eps={seen['n'] / (time.perf_counter() - seen['first'])}", flush=True)
                os._exit(0)  # the measurement is done; skip Faust's shutdown

    import uvloop
    from faust.worker import Worker

    uvloop.install()
    Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
