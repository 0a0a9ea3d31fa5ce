"""`cdrstream.worker.fetch_batches` against the pinned faust-streaming: every private name it
uses still exists, and its drain loop keeps upstream's stop and cancel handling."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import faust
import pytest
from aiokafka.errors import ConsumerStoppedError
from faust.transport.consumer import Consumer, Fetcher
from faust.types import TP

from cdrstream.worker.fetch_batches import (
    FAUST_CONSUMER_NAMES,
    SUPPORTED_FAUST,
    BatchDelivery,
    FetchedBatch,
    WholeFetchApp,
    _Marker,
)


@pytest.fixture(scope="module")
def app() -> Iterator[WholeFetchApp]:
    """A real app of the pinned Faust (no broker is contacted until it starts)."""
    app = WholeFetchApp("fetch-batches-names", broker="kafka://127.0.0.1:1", store="memory://")
    app.delivery = BatchDelivery(app)
    yield app


def test_the_pinned_faust_is_installed() -> None:
    assert faust.__version__ == SUPPORTED_FAUST


@pytest.mark.parametrize("name", FAUST_CONSUMER_NAMES)
def test_every_consumer_name_used_exists(app: WholeFetchApp, name: str) -> None:
    assert hasattr(app.consumer, name), f"faust's consumer has no {name} any more"


def test_the_drain_loop_is_installed_where_the_fetcher_calls_it(app: WholeFetchApp) -> None:
    consumer: Any = app.consumer
    assert consumer._drain_messages == app.delivery.drain
    assert "_drain_messages" in inspect.getsource(Fetcher._fetcher.fun)
    assert "_drain_messages" in vars(Consumer)  # the method our instance attribute shadows


def test_the_worker_producer_is_idempotent_and_waits_for_every_replica(
    app: WholeFetchApp,
) -> None:
    """`_new_producer` and `_settings_extra` are Faust's names the override relies on."""
    extra = app.producer._settings_extra()  # type: ignore[attr-defined]
    assert extra["enable_idempotence"] is True
    assert extra["acks"] == "all"


def test_the_app_and_monitor_names_used_exist(app: WholeFetchApp) -> None:
    assert isinstance(app.consumer_generation_id, int)
    assert isinstance(app.monitor.stream_inbound_time, dict)
    assert callable(app.monitor.track_tp_end_offset)
    assert isinstance(app.conf.stream_wait_empty, bool)
    assert callable(app.consumer.diag.set_flag) and callable(app.consumer.diag.unset_flag)
    consumer: Any = app.consumer
    assert ConsumerStoppedError in consumer.consumer_stopped_errors


class _StoppingConsumer:
    """Just what `BatchDelivery.drain` reads before the first fetch, failing that fetch."""

    def __init__(self, error: BaseException) -> None:
        self._error = error
        self._stopped = asyncio.Event()
        self.diag = _Diag()
        self.consumer_stopped_errors = (ConsumerStoppedError,)

    async def _wait_next_records(self, seconds: float) -> Any:
        raise self._error


class _Diag:
    def __init__(self) -> None:
        self.flags: set[str] = set()

    def set_flag(self, flag: str) -> None:
        self.flags.add(flag)

    def unset_flag(self, flag: str) -> None:
        self.flags.discard(flag)


class _App:
    def __init__(self, consumer: Any, stopping: bool) -> None:
        self.consumer = consumer
        self.should_stop = stopping


class _Fetcher:
    _stopped = asyncio.Event()


@pytest.mark.parametrize("error", [ConsumerStoppedError(), asyncio.CancelledError()])
async def test_a_stop_or_cancel_while_the_app_stops_ends_the_loop_quietly(
    error: BaseException,
) -> None:
    consumer = _StoppingConsumer(error)
    delivery = BatchDelivery(_App(consumer, stopping=True))  # type: ignore[arg-type]
    await delivery.drain(_Fetcher())
    assert consumer.diag.flags == set()  # the FETCHING flag is taken down


@pytest.mark.parametrize(
    "error", [ConsumerStoppedError(), asyncio.CancelledError(), RuntimeError("boom")]
)
async def test_the_same_while_the_app_runs_is_raised(error: BaseException) -> None:
    delivery = BatchDelivery(_App(_StoppingConsumer(error), stopping=False))  # type: ignore[arg-type]
    with pytest.raises(type(error)):
        await delivery.drain(_Fetcher())


def test_taking_a_batch_tells_faust_s_monitor_its_partitions_are_processed(
    app: WholeFetchApp,
) -> None:
    """What keeps Faust's "Stream has not started processing" quiet on a healthy worker."""
    tp = TP("cdr.call-ended", 2)
    current = FetchedBatch(app.consumer_generation_id, [], {tp: [7, 8]}, _Marker(tp))
    assert app.delivery.take(current)
    assert tp in app.monitor.stream_inbound_time

    other = TP("cdr.call-ended", 3)
    stale = FetchedBatch(app.consumer_generation_id - 1, [], {other: [1]}, _Marker(other))
    assert not app.delivery.take(stale)  # fetched before a rebalance: released, not taken
    assert other not in app.monitor.stream_inbound_time
    assert stale.marker.acked


def test_a_rebalance_while_stopping_leaves_the_consumer_to_the_shutdown(
    app: WholeFetchApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faust's own handler closes the consumer from the main thread's loop (it hung or crashed
    a worker stopped during its first rebalance); the override closes nothing."""
    source = inspect.getsource(faust.App._on_partitions_assigned)
    assert "self._on_rebalance_when_stopped()" in source  # where Faust calls the override
    assert "self._on_rebalance_when_stopped()" in inspect.getsource(
        faust.App._on_partitions_revoked
    )
    assert "consumer.close()" in inspect.getsource(faust.App._on_rebalance_when_stopped)
    closed: list[bool] = []
    monkeypatch.setattr(app.consumer, "close", lambda: closed.append(True))
    app._on_rebalance_when_stopped()
    assert closed == []
