"""Masked numbers (core.masking) and the record view that applies them (core.record_view).

The promise: a token issued with ``--mask`` is shown a number's country code and at most
its last four digits (never leaving fewer than five national digits hidden), ``anonymous``
as is, and nothing at all of anything else; its raw numbers and the call id are withheld;
any other text a PBX wrote (extension, disposition) that holds seven digits in a row is
masked whole like a number.
"""

from __future__ import annotations

import re
from dataclasses import replace
from zoneinfo import ZoneInfo

import orjson
import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdrstream.core.masking import (
    HIDDEN_DIGITS_MIN,
    MASK,
    SHOWN_DIGITS_MAX,
    holds_number,
    is_country_code,
    mask_number,
    mask_text,
)
from cdrstream.core.numbers import display_number, normalize_number
from cdrstream.core.record import CallRecord
from cdrstream.core.record_view import RECORD_FIELDS, RecordView, record_to_dict

B = "\u2022"  # BULLET
_SHAPE = re.compile(rf"anonymous|{MASK}|\+[0-9]{{1,3}} {MASK}( [0-9]{{1,4}})?")
_CODES = sorted(str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@pytest.mark.parametrize(
    ("shown", "masked"),
    [
        ("+31201234567", f"+31 {B * 3} 4567"),  # NL, 9 national digits
        ("+31612345678", f"+31 {B * 3} 5678"),
        ("+12125551234", f"+1 {B * 3} 1234"),  # NANP: a 1-digit country code
        ("+358401234567", f"+358 {B * 3} 4567"),  # a 3-digit country code
        ("+4420794600", f"+44 {B * 3} 600"),  # 8 national digits: 5 stay hidden
        ("+3224567890", f"+32 {B * 3} 890"),
        ("+35412345", f"+354 {B * 3}"),  # 5 national digits: all hidden
        ("+2904567", f"+290 {B * 3}"),
        ("+31", f"+31 {B * 3}"),
        ("+882123456789", f"+882 {B * 3} 6789"),  # non-geographic country code
        ("anonymous", "anonymous"),  # withheld: nothing to hide
        ("201", MASK),  # an extension
        ("0", MASK),
        ("*97", MASK),  # a feature code
        ("0201234567", MASK),  # digits without +: no country code to keep
        ("0031201234567", MASK),
        ("31201234567", MASK),
        ("+999123456789", MASK),  # + and digits, but no such country code
        ("+", MASK),
        ("", MASK),
        ("sip:alice@example.com", MASK),
        ("+31 20 123 4567", MASK),  # not E.164 as served: shown as nothing
        ("+\u0663\u0661\u0662\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667", MASK),
        ("\uff0b31201234567", MASK),
        ("Anonymous", MASK),  # only the served marker itself stays
        ("+31201234567\n", MASK),
        ("+3120123456789012345678", MASK),  # longer than E.164 allows
    ],
)
def test_mask_number(shown: str, masked: str) -> None:
    assert mask_number(shown) == masked


def test_the_mask_does_not_tell_the_length() -> None:
    assert mask_number("+31201234567") == mask_number("+3112345674567") == f"+31 {MASK} 4567"


@given(
    code=st.sampled_from(_CODES),
    national=st.text("0123456789", max_size=17),
)
def test_a_masked_e164_number_shows_its_country_code_and_hides_at_least_five_digits(
    code: str, national: str
) -> None:
    masked = mask_number(f"+{code}{national}")
    assert _SHAPE.fullmatch(masked), masked
    head, _, tail = masked.partition(f" {MASK}")
    assert head == f"+{code}"
    shown = tail.strip()
    assert len(shown) <= SHOWN_DIGITS_MAX
    assert len(national) - len(shown) >= min(len(national), HIDDEN_DIGITS_MIN)
    assert national.endswith(shown)
    if len(national) >= HIDDEN_DIGITS_MIN + SHOWN_DIGITS_MAX:
        assert shown == national[-SHOWN_DIGITS_MAX:]


@given(st.text(max_size=40))
def test_any_text_masks_to_one_of_the_documented_shapes(text: str) -> None:
    masked = mask_number(text)
    assert _SHAPE.fullmatch(masked), (text, masked)
    # Every digit shown is one of the text's: a country code and a suffix of it.
    if masked not in ("anonymous", MASK):
        digits = "".join(c for c in masked if c.isdigit())
        code = masked[1:].split(" ")[0]
        assert text.startswith("+" + code)
        assert text.endswith(digits[len(code) :])


@pytest.mark.parametrize(
    "raw",
    ["020 123 4567", "+31 6 1234 5678", "0032 2 456 78 90", "201", "*97", "anonymous",
     "Unknown", "sip:alice@example.com", "tel:+1-212-555-1234", '"Bob" <sip:0612345678@x>'],
)  # fmt: skip
def test_every_number_a_record_can_hold_masks_without_its_hidden_digits(raw: str) -> None:
    """What the rules put into ``source``/``destination`` (display_number), masked."""
    shown = display_number(normalize_number(raw, "NL"))
    masked = mask_number(shown)
    assert _SHAPE.fullmatch(masked)
    digits = "".join(c for c in shown if c.isdigit())
    if len(digits) > SHOWN_DIGITS_MAX + 3:
        assert digits[-(SHOWN_DIGITS_MAX + 1) :] not in masked.replace(" ", "")


def test_is_country_code() -> None:
    assert is_country_code("+31") and is_country_code("+1") and is_country_code("+358")
    for text in ("+3", "+312", "31", "+999", "+", "", "+031", "+31 ", "+\u0663\u0661", "++31"):
        assert not is_country_code(text), text


# ------------------------------------------------------------------------------- record view

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
RECORD = CallRecord(
    id="oT3b3k0mXoq4uJ2P",
    tenant_id="t",
    call_id="1732522443.1187",
    started_at_ms=1_795_594_443_120,
    answered_at_ms=1_795_594_447_455,
    ended_at_ms=1_795_594_571_002,
    duration=123,
    source="+31201234567",
    source_raw="020 123 4567",
    destination="+31851234567",
    destination_raw="0851234567",
    extension="201",
    direction="inbound",
    disposition="answered",
)


def test_a_full_view_is_the_record_as_stored() -> None:
    view = RecordView(AMSTERDAM, masked_numbers=False)
    assert view.served(RECORD) is RECORD
    assert view.to_dict(RECORD) == record_to_dict(RECORD, AMSTERDAM)


def test_a_masked_view_masks_numbers_and_withholds_raw_ones() -> None:
    view = RecordView(AMSTERDAM, masked_numbers=True)
    served = view.served(RECORD)
    assert (served.source, served.destination) == (f"+31 {MASK} 4567", f"+31 {MASK} 4567")
    assert served.source_raw == served.destination_raw == ""
    assert served.call_id == ""
    changed = ("source", "destination", "source_raw", "destination_raw", "call_id")
    assert replace(served, **{name: getattr(RECORD, name) for name in changed}) == RECORD
    shown = view.to_dict(RECORD)
    assert tuple(shown) == RECORD_FIELDS  # the same keys, in the same order
    assert shown["source_raw"] is None and shown["destination_raw"] is None
    assert shown["call_id"] is None
    assert shown["source"] == f"+31 {MASK} 4567"
    full = record_to_dict(RECORD, AMSTERDAM)
    for key in RECORD_FIELDS:
        if key not in changed:
            assert shown[key] == full[key], key


@given(
    source=st.one_of(st.text(max_size=25), st.from_regex(r"\+[0-9]{6,15}", fullmatch=True)),
    raw=st.from_regex(r"[0-9 ()+-]{8,25}", fullmatch=True),
)
def test_a_masked_view_never_serves_the_hidden_digits(source: str, raw: str) -> None:
    record = replace(RECORD, source=source, source_raw=raw, destination=source, destination_raw=raw)
    shown = orjson.dumps(RecordView(AMSTERDAM, masked_numbers=True).to_dict(record)).decode()
    for number in (source, raw):
        digits = "".join(c for c in number if c.isascii() and c.isdigit())
        if len(digits) >= 8:
            assert digits[-8:] not in shown, (number, shown)
    assert raw not in shown


# ---------------------------------------------------- numbers in the other fields a PBX fills


@pytest.mark.parametrize(
    ("text", "served"),
    [
        ("+31612345678", f"+31 {MASK} 5678"),  # the extension: masked as a number
        ("0612345699", MASK),  # the disposition
        ("+31687654321@pbx", MASK),  # a call id made of a number
        ("06-1234 5678", MASK),  # written as numbers are
        ("(020) 123.4567", MASK),
        ("tel:+31201234567", MASK),
        ("\uff10\uff16\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18", MASK),  # fullwidth
        ("\u0660\u0666\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668", MASK),  # Arabic-Indic
        ("0612\u200b345678", MASK),  # a zero-width space inside
        ("1234567", MASK),  # seven digits: a subscriber number somewhere
        ("201", "201"),  # an extension
        ("123456", "123456"),  # six digits: still an extension
        ("0", "0"),
        ("*97", "*97"),
        ("busy", "busy"),
        ("no_answer", "no_answer"),
        ("12 34 56", "12 34 56"),
        ("12   34567", "12   34567"),  # three spaces: two runs, neither a number
        ("", ""),
    ],
)
def test_mask_text(text: str, served: str) -> None:
    assert mask_text(text) == served
    assert holds_number(text) == (served != text)


#: What a PBX puts into the fields that are not numbers: extensions, words, and numbers
#: written every way (the issue's findings among them).
_FULLWIDTH_DIGITS = "".join(chr(0xFF10 + d) for d in range(10))
_DIGITS = st.sampled_from(["0123456789", _FULLWIDTH_DIGITS])
_SEPARATOR = st.sampled_from(["", "", "", " ", "-", ".", "\u00a0", "\u200b", "(", ")"])


@st.composite
def written_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """(a number written as a PBX might, its digits in ASCII)."""
    alphabet = draw(_DIGITS)
    digits = draw(st.text("0123456789", min_size=7, max_size=15))
    written = "".join(alphabet[int(d)] + draw(_SEPARATOR) for d in digits)
    around = draw(st.sampled_from(["{}", "+{}", "{}@pbx", "sip:{}@10.0.0.1", "tel:{}", "<{}>"]))
    return around.format(written), digits


PBX_TEXT = st.one_of(
    written_numbers().map(lambda pair: pair[0]),
    st.from_regex(r"[0-9]{1,6}", fullmatch=True),
    st.sampled_from(["answered", "no_answer", "busy", "failed", "cancelled", "odd word", ""]),
    st.text(max_size=30),
)


@given(
    extension=PBX_TEXT,
    call_id=PBX_TEXT,
    disposition=st.one_of(st.none(), PBX_TEXT),
    number=written_numbers(),
    field=st.sampled_from(["extension", "call_id", "disposition"]),
)
def test_a_masked_view_serves_no_run_of_seven_digits_in_any_field(
    extension: str, call_id: str, disposition: str | None, number: tuple[str, str], field: str
) -> None:
    written, digits = number
    fields = {"extension": extension, "call_id": call_id, "disposition": disposition}
    record = replace(RECORD, **{**fields, field: written})
    view = RecordView(AMSTERDAM, masked_numbers=True)
    shown = view.to_dict(record)
    text = orjson.dumps(shown).decode()
    assert digits[-(SHOWN_DIGITS_MAX + 1) :] not in text, (written, text)
    assert shown["call_id"] is None
    for key in ("extension", "disposition"):
        value = getattr(record, key)
        if value is None:
            assert shown[key] is None
        elif holds_number(value):
            assert _SHAPE.fullmatch(shown[key]), shown[key]
        else:
            assert shown[key] == value  # nothing else changes
    # No digit run a masked token is served is longer than the shown tail of a number.
    for key, value in shown.items():
        if key in ("extension", "disposition") and isinstance(value, str):
            assert not holds_number(value), (key, value)


@given(PBX_TEXT)
def test_a_full_view_serves_the_pbx_text_as_it_is(text: str) -> None:
    record = replace(RECORD, extension=text, call_id=text, disposition=text)
    shown = RecordView(AMSTERDAM, masked_numbers=False).to_dict(record)
    assert shown["extension"] == shown["call_id"] == shown["disposition"] == text
