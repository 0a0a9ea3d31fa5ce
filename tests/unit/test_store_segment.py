"""Sealed days (``store/segment.py``) and the id map's addressing (``store/layout.py``).

The segment merge is checked against a plain model: after any sequence of seals (new
rows, replacements by id, tombstones), the day holds exactly the model's rows, in chunks
that are ordered and do not overlap, and its index is exactly the one its rows make.
"""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from cdrstream.core.record import CallRecord
from cdrstream.core.versions import Version
from cdrstream.store import codec, segment
from cdrstream.store.layout import (
    DAY_MS,
    bucket_of,
    hot_member,
    id_key,
    id_value,
    member_position,
    split_pairs,
    start_bytes,
)

DAY = 20_833
T0 = DAY * DAY_MS

IDS = st.sampled_from([f"id{n:03d}" for n in range(60)] + ["é☎", "Z", "a\x00b"])
NUMBERS = st.one_of(
    st.from_regex(r"\+[1-9][0-9]{0,14}", fullmatch=True),
    st.sampled_from(["anonymous", "+0123", "+12345678901234567", "+", "201"]),
)


def record(rid: str, started: int, source: str, destination: str, ext: str) -> CallRecord:
    return CallRecord(
        id=rid,
        tenant_id="t",
        call_id="c-" + rid,
        started_at_ms=started,
        answered_at_ms=None,
        ended_at_ms=started + 1_000,
        duration=0,
        source=source,
        source_raw=source,
        destination=destination,
        destination_raw=destination,
        extension=ext,
        direction="inbound",
        disposition=None,
    )


@st.composite
def rows(draw: st.DrawFn) -> segment.Row:
    rid = draw(IDS)
    # Few distinct start times, so ties (ordered by id) are common.
    started = T0 + draw(st.integers(min_value=0, max_value=40)) * 1_000
    r = record(
        rid,
        started,
        draw(NUMBERS),
        draw(NUMBERS),
        draw(st.sampled_from(["200", "201", "", "0", "x\x01"])),
    )
    return segment.row_of_payload(rid, codec.encode(r))


@st.composite
def seals(draw: st.DrawFn) -> list[tuple[list[segment.Row], set[tuple[int, str]]]]:
    steps = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        new = {r.id: r for r in draw(st.lists(rows(), max_size=80))}
        dead = set(
            draw(
                st.lists(
                    st.tuples(st.sampled_from([T0 + k * 1000 for k in range(41)]), IDS), max_size=5
                )
            )
        )
        steps.append((list(new.values()), dead))
    return steps


def decoded(raw: bytes) -> list[segment.Row]:
    out = []
    for chunk in segment.Segment.parse(raw).chunks:
        part = segment.chunk_rows(chunk.data)
        assert len(part) == chunk.rows <= segment.CHUNK_ROWS
        assert (chunk.oldest, chunk.newest) == (part[0].started, part[-1].started)
        out.extend(part)
    return out


@settings(max_examples=150, deadline=None)
@given(seals())
def test_merge_keeps_exactly_the_model(steps: list[tuple[list[segment.Row], set]]) -> None:
    model: dict[str, segment.Row] = {}
    raw: bytes | None = None
    index: bytes | None = None
    for new, dead in steps:
        for r in new:
            old = model.get(r.id)
            if old is not None and old.key != r.key:
                dead = {*dead, old.key}  # the write script's tombstone for the old start
            model[r.id] = r
        model = {k: r for k, r in model.items() if r.key not in dead}
        built = segment.merge(raw, index, new, dead)
        raw, index = built.segment or None, built.index or None
        assert built.count == len(model)
        if raw is None:
            assert not model
            continue
        got = decoded(raw)
        keys = [r.key for r in got]
        assert keys == sorted(keys)  # ordered, no overlap between chunks
        assert {r.id: r.line for r in got} == {k: r.line for k, r in model.items()}
        chunks = segment.Segment.parse(raw).chunks
        by_chunk = []
        for n, c in enumerate(chunks):
            by_chunk.append((n, segment.chunk_rows(c.data)))
        numbers, extensions = segment._entries(by_chunk)
        assert index == segment.encode_index(numbers, extensions)


def test_appending_newer_rows_keeps_the_older_chunks_bytes() -> None:
    older = [
        segment.row_of_payload(f"a{n}", codec.encode(record(f"a{n}", T0 + n, "+311", "+312", "1")))
        for n in range(100)
    ]
    newer = [
        segment.row_of_payload(
            f"b{n}", codec.encode(record(f"b{n}", T0 + 1_000 + n, "+311", "+312", "1"))
        )
        for n in range(50)
    ]
    first = segment.merge(None, None, older, set())
    second = segment.merge(first.segment, first.index, newer, set())
    before = segment.Segment.parse(first.segment).chunks
    after = segment.Segment.parse(second.segment).chunks
    assert after[: len(before)] == before
    assert second.rows == 50  # only the new rows were encoded


@given(
    st.text(alphabet=string.digits, min_size=1, max_size=20),
    st.text(alphabet=string.digits, min_size=1, max_size=20),
)
def test_number_range_holds_exactly_the_numbers_with_the_prefix(digits: str, prefix: str) -> None:
    low, high = segment.number_range(prefix.encode())
    key = segment.number_key(digits.encode())
    # Keys keep 16 digits: beyond that, the index proposes candidates the reader tests.
    assert (low <= key <= high) == digits[:16].startswith(prefix[:16])


@given(st.text(alphabet=string.digits, max_size=16), st.text(alphabet=string.digits, max_size=16))
def test_number_keys_sort_like_their_digits(a: str, b: str) -> None:
    ka, kb = segment.number_key(a.encode()), segment.number_key(b.encode())
    assert (ka < kb) == (a < b) and (ka == kb) == (a == b)


def test_linear_hashing_finds_every_id_after_any_number_of_splits() -> None:
    ids = [id_key(f"record-{n}") for n in range(3_000)]
    level, split = 0, 0
    buckets: dict[int, set[bytes]] = {0: set(ids)}
    for old, new in split_pairs(0, 0, 300):
        # What the Lua split does: ids whose bit `level` is set move to the new bucket.
        moving = {k for k in buckets.get(old, set()) if int.from_bytes(k[:4], "big") >> level & 1}
        buckets[old] = buckets.get(old, set()) - moving
        buckets[new] = moving
        split += 1
        if split == 1 << level:
            level, split = level + 1, 0
        assert new == old + (1 << (level if split else level - 1))
        for key in ids:
            assert key in buckets[bucket_of(key, level, split)]
    assert len(buckets) == 301
    assert max(len(b) for b in buckets.values()) <= 3 * 3_000 / 301


def test_id_values_and_members() -> None:
    payload = b"[1,2]"
    version = Version(1_795_000_060_000, 1_795_000_061_000)
    value = id_value(1_795_000_000_000, payload, version, b"extra")
    assert value[:6] == (1_795_000_000_000).to_bytes(6, "big")
    assert value.endswith(b"extra") and len(value) == 29
    assert value[12:24] == start_bytes(version.ended_at_ms) + start_bytes(version.event_ms)
    assert id_value(1, payload, version) != id_value(1, b"[1,3]", version)
    member = hot_member(1_795_000_000_000, "abc")
    assert member_position(member) == (1_795_000_000_000, b"abc")


@given(st.builds(record, IDS, st.integers(0, 2**40), NUMBERS, NUMBERS, st.text(max_size=5)))
def test_rows_round_trip(r: CallRecord) -> None:
    import orjson

    line = codec.row(r.id, codec.encode(r))
    assert codec.build_row("t", orjson.loads(line)) == r
