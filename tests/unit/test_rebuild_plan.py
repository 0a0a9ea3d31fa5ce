"""What a rebuild reads, when it refuses, and how it reports."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdrstream.core.clock import DAY_MS
from cdrstream.rebuild.plan import (
    Progress,
    TopicRetention,
    nothing_to_replay,
    parse_duration_ms,
    retention_refusal,
    retention_shortfall,
    start_time_ms,
)

WINDOW = 30 * DAY_MS


@pytest.mark.parametrize("kept", [None, -1, WINDOW, 31 * DAY_MS, 10 * WINDOW])
def test_a_topic_that_keeps_the_whole_window_is_fine(kept: int | None) -> None:
    assert retention_shortfall(kept, WINDOW) is None


def test_a_shorter_topic_is_refused_saying_by_how_much() -> None:
    shortfall = retention_shortfall(7 * DAY_MS, WINDOW)
    assert shortfall is not None
    assert shortfall.missing_ms == 23 * DAY_MS
    message = shortfall.message("cdr.call-ended")
    assert "7.0 days" in message and "30.0 days" in message and "by 23.0 days" in message
    assert str(WINDOW) in message  # the retention.ms to set


def test_start_is_the_window_or_since_whichever_is_later() -> None:
    now = 1_800_000_000_000
    assert start_time_ms(now, WINDOW, None) == now - WINDOW
    assert start_time_ms(now, WINDOW, 2 * DAY_MS) == now - 2 * DAY_MS
    assert start_time_ms(now, WINDOW, 90 * DAY_MS) == now - WINDOW


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("90m", 5_400_000),
        ("36h", 129_600_000),
        ("7d", 7 * DAY_MS),
        ("2w", 14 * DAY_MS),
        ("45", 45_000),
        (" 3D ", 3 * DAY_MS),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@given(st.text(max_size=12))
def test_any_text_is_a_duration_or_a_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        assert parse_duration_ms(text) > 0


@pytest.mark.parametrize("text", ["", "d", "0d", "-3h", "1.5h", "٣d", "3y", "h3"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration_ms(text)


def test_progress_line_and_bar() -> None:
    progress = Progress(done=50_000, total=200_000, elapsed_s=2.5)
    assert progress.rate == 20_000
    assert progress.eta_s == 7.5
    assert progress.line() == "rebuild: 50,000/200,000 events (25.0%), 20,000 events/s, ETA 8s"
    assert progress.bar(8).startswith("[##......] 50,000/200,000")
    assert Progress(0, 0, 0.0).line().endswith("ETA ?")
    assert Progress(0, 0, 0.0).bar(4).startswith("[####]")


@pytest.mark.parametrize("policy", ["compact", "compact,delete", "delete, compact", "COMPACT"])
def test_a_compacted_topic_is_refused(policy: str) -> None:
    refusal = retention_refusal("t", TopicRetention(-1, -1, policy), WINDOW)
    assert refusal is not None
    assert f"cleanup.policy={policy}" in refusal and "set cleanup.policy=delete" in refusal


@pytest.mark.parametrize("limit", [0, 1_073_741_824, 10**15])
def test_a_size_limited_topic_is_refused(limit: int) -> None:
    refusal = retention_refusal("t", TopicRetention(-1, limit, "delete"), WINDOW)
    assert refusal is not None
    assert f"{limit:,} bytes per partition (retention.bytes)" in refusal
    assert "set retention.bytes=-1" in refusal


@pytest.mark.parametrize(
    "retention",
    [
        TopicRetention(None, None, "delete"),
        TopicRetention(-1, -1, "delete"),
        TopicRetention(WINDOW + DAY_MS, -1, "delete"),
    ],
)
def test_a_topic_that_keeps_everything_of_the_window_is_accepted(
    retention: TopicRetention,
) -> None:
    assert retention_refusal("t", retention, WINDOW) is None


def test_a_short_retention_ms_is_still_refused() -> None:
    refusal = retention_refusal("t", TopicRetention(7 * DAY_MS, -1, "delete"), WINDOW)
    assert refusal is not None and "by 23.0 days" in refusal


@pytest.mark.parametrize(
    ("tenant", "since_ms", "read", "says"),
    [
        (
            None,
            None,
            0,
            "rebuild: nothing to replay: the topic holds no event from the retention window",
        ),
        (None, 60_000, 0, "rebuild: nothing to replay: the topic holds no event from the last 60s"),
        (
            "acme",
            None,
            1_234,
            "rebuild: nothing to replay: no event of tenant acme in the retention window"
            " (1,234 events of other tenants read on its partition)",
        ),
    ],
)
def test_nothing_to_replay_says_so(
    tenant: str | None, since_ms: int | None, read: int, says: str
) -> None:
    assert nothing_to_replay(tenant, since_ms, read) == says
