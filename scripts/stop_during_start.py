"""SIGTERM `cdrstream worker` again and again while Faust starts; count the exit codes.

A worker stopped during its first rebalance used to hang until killed (-9 here) or crash
(-11, with faulthandler's traceback in its log): faust-streaming 0.15.3 closed the consumer
from the wrong thread (`WholeFetchApp._on_rebalance_when_stopped`, docs/pipeline.md). Run
this after upgrading faust-streaming, aiokafka, mode or uvloop:

    nice -n 19 .venv/bin/python scripts/stop_during_start.py --iterations 80

It runs its own Kafka (KRaft) and redis-server on free ports under a temporary directory,
one worker at a time, each in a consumer group of its own, and stops each a random
[--min-delay, --max-delay] seconds after its web server answers (as the tests' start_worker
waits for it): the first rebalance completes in that window. Logs of the workers that did
not exit 0 are kept (the temporary directory goes when every worker exited 0).
Exit code 1 if any worker hung or crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from cdrstream.kafka_topics import ensure_owned_topics
from cdrstream.settings import load_settings
from cdrstream.stack.kafka import KafkaNode
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess, settings_env

#: Logged by the worker when a rebalance reaches it after SIGTERM (the window was hit).
REBALANCE_WHILE_STOPPING = "rebalance while the worker stops"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=80)
    parser.add_argument("--min-delay", type=float, default=0.0)
    parser.add_argument("--max-delay", type=float, default=1.5)
    parser.add_argument("--stop-timeout", type=float, default=15.0, help="then SIGKILL")
    options = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="stop-during-start-"))
    os.chdir(base)  # each worker's Faust data directory lands here, not in the checkout
    defaults = load_settings({})
    redis = RedisNode(base_dir=base / "redis", port=free_port())
    kafka = KafkaNode(
        base_dir=base / "kafka",
        port=free_port(),
        controller_port=free_port(),
        version=defaults.kafka_version,
        cache_dir=Path(defaults.cache_dir),
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop: still take the stack down
    codes: collections.Counter[int | None] = collections.Counter()
    hits = 0
    redis.up()
    kafka.up()
    try:
        suffix = uuid.uuid4().hex[:8]
        settings = replace(
            defaults,
            redis_url=redis.url,
            kafka_bootstrap=kafka.bootstrap,
            topic=f"cdr.call-ended.{suffix}",
            dlq_topic=f"cdr.call-ended.{suffix}.dlq",
            topic_partitions=3,
            stack_dir=str(base / "stack"),
            access_file=str(base / "access.json"),
        )
        asyncio.run(ensure_owned_topics(settings))
        for i in range(options.iterations):
            settings = replace(
                settings, consumer_group=f"stop-during-start-{i}-{suffix}", worker_port=free_port()
            )
            log = base / f"worker-{i:03d}.log"
            worker = RoleProcess(["worker"], env=settings_env(settings), log_file=log).start()
            worker.wait_http(f"http://127.0.0.1:{settings.worker_port}/healthz")
            delay = random.uniform(options.min_delay, options.max_delay)
            started = time.monotonic()
            time.sleep(delay)
            code = worker.stop(timeout_s=options.stop_timeout)
            text = log.read_text(errors="replace")
            hit = REBALANCE_WHILE_STOPPING in text
            hits += hit
            codes[code] += 1
            print(
                f"{i:3d} delay {delay:4.2f}s exit {code} after {time.monotonic() - started:4.1f}s"
                f"{' (stopped during a rebalance)' if hit else ''}"
                f"{' FATAL ERROR in ' + str(log) if 'Fatal Python error' in text else ''}",
                flush=True,
            )
            if code == 0:
                log.unlink()
    finally:
        kafka.down()
        redis.down()
    failed = bool(set(codes) - {0})
    if not failed:
        os.chdir(tempfile.gettempdir())
        shutil.rmtree(base)
    kept = f"; logs kept in {base}" if failed else ""
    print(f"exit codes: {dict(codes)}; stopped during a rebalance: {hits}{kept}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
