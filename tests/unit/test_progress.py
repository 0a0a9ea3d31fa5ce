"""A batch that stays unwritten past the threshold is a stall, with its reason."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError

from cdrstream.worker.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_idle_is_not_a_stall_however_long() -> None:
    clock = Clock()
    progress = Progress(stall_after_s=30, clock=clock)
    clock.now += 3600
    assert progress.busy_for() == 0.0
    assert progress.stall() is None


def test_a_batch_in_hand_past_the_threshold_is_a_stall_with_the_last_failure() -> None:
    clock = Clock()
    progress = Progress(stall_after_s=30, clock=clock)
    progress.batch_started()
    clock.now += 29
    assert progress.stall() is None
    progress.failed("redis write", RedisConnectionError("refused on 10.0.0.7:6379"))
    clock.now += 2
    stall = progress.stall()
    assert stall is not None
    assert "31s" in stall and "redis write: ConnectionError" in stall
    assert "10.0.0.7" not in stall  # the type only
    assert progress.busy_for() == 31


def test_a_finished_batch_clears_the_stall() -> None:
    clock = Clock()
    progress = Progress(stall_after_s=1, clock=clock)
    progress.batch_started()
    clock.now += 5
    assert progress.stall() is not None
    progress.batch_finished()
    assert progress.stall() is None and progress.busy_for() == 0.0
