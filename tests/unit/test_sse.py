"""The live tail, the pure part: SSE framing, event ids, resuming, filters."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cdrstream.core.record import CallRecord
from cdrstream.core.sse import (
    ZERO,
    LiveFilter,
    StreamState,
    event,
    format_id,
    heartbeat,
    parse_id,
    resume_plan,
    retry,
)


def parse_frames(data: bytes) -> list[dict[str, str]]:
    """A minimal SSE parser after the WHATWG rules (field, colon, optional space)."""
    frames = []
    for block in data.decode("utf-8").split("\n\n"):
        if not block:
            continue
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                fields.setdefault("comment", line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data" and "data" in fields:
                fields["data"] += "\n" + value
            else:
                fields[name] = value
        frames.append(fields)
    return frames


@given(ms=st.integers(0, 2**64 - 1), seq=st.integers(0, 2**64 - 1))
def test_ids_round_trip_and_order_like_stream_ids(ms: int, seq: int) -> None:
    text = format_id((ms, seq))
    assert parse_id(text) == (ms, seq)
    assert parse_id(text.encode()) == (ms, seq)
    assert parse_id(f"{ms}-{seq + 1}") is None or (ms, seq) < parse_id(f"{ms}-{seq + 1}")  # type: ignore[operator]


def test_malformed_ids() -> None:
    for bad in (None, "", "abc", "1", "1-", "-1", "1-2-3", "1.5-2", "\uff11-2", "1 -2",
                "9" * 21 + "-0", f"{2**64}-0", b"\xff-1", "1-2" + " " * 80):  # fmt: skip
        assert parse_id(bad) is None, bad
    assert parse_id(" 5-6 ") == (5, 6)
    assert parse_id("0-0") == ZERO


@given(data=st.text(), name=st.text(max_size=20), eid=st.text(max_size=30))
def test_an_event_is_one_frame_whatever_its_fields_hold(data: str, name: str, eid: str) -> None:
    frame = event(data, name=name, event_id=eid)
    assert frame.endswith(b"\n\n") and b"\n\n" not in frame[:-2]
    parsed = parse_frames(frame)
    assert len(parsed) == 1
    want = data.replace("\r\n", "\n").replace("\r", "\n")
    assert parsed[0]["data"] == want
    assert "\n" not in parsed[0]["event"] and "\n" not in parsed[0]["id"]


def test_framing() -> None:
    assert event('{"a":1}', name="record", event_id="5-0") == (
        b'event: record\nid: 5-0\ndata: {"a":1}\n\n'
    )
    assert event("", name="reload") == b"event: reload\ndata:\n\n"
    assert heartbeat("7-1") == b": heartbeat\nid: 7-1\n\n"
    assert heartbeat(None) == b": heartbeat\n\n"
    assert retry(2000) == b"retry: 2000\n\n"


def test_resume_plan() -> None:
    trimmed = StreamState(exists=True, last=(100, 5), first=(60, 0), trimmed=True)
    assert resume_plan((60, 0), trimmed) == "replay"  # the oldest held was seen
    assert resume_plan((70, 3), trimmed) == "replay"
    assert resume_plan((100, 5), trimmed) == "replay"  # up to date
    assert resume_plan((59, 9), trimmed) == "reload"  # entries after it were trimmed
    assert resume_plan((100, 6), trimmed) == "reload"  # not this stream's
    assert resume_plan(None, trimmed) == "reload"  # malformed
    assert resume_plan(ZERO, trimmed) == "reload"
    whole = StreamState(exists=True, last=(100, 5), first=(60, 0), trimmed=False)
    assert resume_plan(ZERO, whole) == "replay"  # nothing ever trimmed
    assert resume_plan((10, 0), whole) == "replay"
    deleted = StreamState(exists=True, last=(100, 5), first=(60, 0), max_deleted=(80, 0))
    assert resume_plan((70, 0), deleted) == "reload"  # XDEL'd after it
    assert resume_plan((80, 0), deleted) == "replay"
    emptied = StreamState(exists=True, last=(100, 5), first=None, trimmed=True)
    assert resume_plan((100, 5), emptied) == "replay"  # saw the last one: nothing missed
    assert resume_plan((99, 0), emptied) == "reload"
    assert resume_plan(ZERO, StreamState(exists=True)) == "replay"  # empty, never written
    assert resume_plan(ZERO, StreamState(exists=False)) == "replay"
    assert resume_plan((1, 0), StreamState(exists=False)) == "reload"


@given(
    ids=st.lists(st.tuples(st.integers(1, 50), st.integers(0, 3)), min_size=1, unique=True),
    keep=st.integers(0, 60),
    seen=st.tuples(st.integers(0, 55), st.integers(0, 3)),
)
def test_a_replay_is_planned_only_when_nothing_after_the_client_was_trimmed(
    ids: list[tuple[int, int]], keep: int, seen: tuple[int, int]
) -> None:
    """A stream of entries trimmed from its old end: "replay" exactly when every entry
    after the client's id is still held (or, when it cannot tell, "reload")."""
    entries = sorted(ids)
    held = entries[len(entries) - min(keep, len(entries)) :]
    gone = entries[: len(entries) - len(held)]
    state = StreamState(
        exists=True, last=entries[-1], first=held[0] if held else None, trimmed=bool(gone)
    )
    plan = resume_plan(seen, state)
    missed_gone = any(e > seen for e in gone)
    if plan == "replay":
        assert not missed_gone and seen <= entries[-1]
    elif seen <= entries[-1] and not missed_gone:
        # Reload although nothing was missed: only for the last entry trimmed itself, or
        # an id between it and the oldest held (the stream cannot tell those apart).
        assert gone and seen >= gone[-1] and (not held or seen < held[0])


def rec(direction: str = "inbound", extension: str = "201", src: str = "+31201234567",
        dst: str = "+31612345678") -> CallRecord:  # fmt: skip
    return CallRecord("id", "t", "c", 0, None, 0, 0, src, src, dst, dst, extension,
                      direction, None)  # type: ignore[arg-type]  # fmt: skip


def test_live_filter_means_what_the_list_filters_mean() -> None:
    r = rec()
    assert LiveFilter().matches(r)
    assert LiveFilter(direction="inbound").matches(r)
    assert not LiveFilter(direction="outbound").matches(r)
    assert LiveFilter(extension="201").matches(r) and not LiveFilter(extension="20").matches(r)
    assert LiveFilter(number_prefix="+3120").matches(r)  # source
    assert LiveFilter(number_prefix="+316").matches(r)  # destination
    assert LiveFilter(number_prefix="+31").matches(r)
    assert not LiveFilter(number_prefix="+32").matches(r)
    assert not LiveFilter(number_prefix="+31").matches(rec(src="anonymous", dst="201"))
    both = LiveFilter(direction="inbound", extension="201", number_prefix="+3161")
    assert both.matches(r) and not both.matches(rec(extension="202"))
