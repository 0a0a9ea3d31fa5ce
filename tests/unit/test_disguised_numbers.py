"""Disguised numbers: emergency and 116 numbers written in other digit scripts, with invisible
format characters or Unicode separators inside; free-text withheld markers; extension suffixes.

Emergency numbers come straight from libphonenumber's short-number data (every region, every
number its emergency pattern matches, expanded exactly) plus `emergency.SUPPLEMENT`; digit
scripts are every Unicode ``Nd`` block of ten; format characters every ``Cf`` character.
"""

from __future__ import annotations

import itertools
import re
import sys
import unicodedata

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrstream.core.numbers import (
    NormalizedNumber,
    display_number,
    normalize_number,
    normalize_query_number,
)
from cdrstream.core.text_folding import fold_dial_text
from cdrstream.core.withheld import WITHHELD_MARKERS, is_withheld_text
from tests.unit.phone_data import ALL_REGIONS, EMERGENCY, emergency_pattern, expand

# --- the data: every region, every emergency number, every digit script -----------------------

# first digit (0) of every block of ten Unicode decimal digits, ASCII first
DIGIT_ZEROS = [
    chr(cp)
    for cp in range(sys.maxunicode + 1)
    if unicodedata.category(chr(cp)) == "Nd" and unicodedata.decimal(chr(cp)) == 0
]
FORMAT_CHARS = [
    chr(cp) for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Cf"
]
SEPARATORS = [
    " ",
    "-",
    ".",
    "/",
    "(",
    ")",
    "\u00a0",
    "\u3000",
    "\u2010",
    "\u2013",
    "\u2212",
    "\uff0d",
]
# what hypothesis inserts between digits: no brackets, whose "(0)" after a country code is the
# optional trunk prefix and rightly goes ("+49 (0)30 ..."), which would change the number
INSERTS = FORMAT_CHARS + [sep for sep in SEPARATORS if sep not in "()"]
SOCIAL_VALUE = ["116000", "116006", "116016", "116111", "116117", "116123"]
FULLWIDTH, ARABIC_INDIC, PERSIAN, DEVANAGARI = "\uff10", "\u0660", "\u06f0", "\u0966"


def in_script(digits: str, zero: str) -> str:
    return "".join(chr(ord(zero) + int(d)) if d.isdigit() else d for d in digits)


def disguise(digits: str, zero: str, fmt: str, sep: str) -> str:
    """``digits`` in the script of ``zero``, a format character in front and after the first
    digit, a separator after the second."""
    written = in_script(digits, zero)
    return fmt + written[0] + fmt + written[1] + sep + written[2:]


def test_the_data_is_complete() -> None:
    # every region libphonenumber knows; every one with short-number emergency data has numbers
    assert len(ALL_REGIONS) >= 245
    with_data = {r for r in ALL_REGIONS if emergency_pattern(r)}
    assert with_data == {region for region, _ in EMERGENCY} and len(with_data) >= 240
    assert len(EMERGENCY) >= 800
    assert len(DIGIT_ZEROS) >= 60 and DIGIT_ZEROS[0] == "0"
    assert {"\uff10", "\u0660", "\u06f0", "\u0966"} <= set(DIGIT_ZEROS)
    assert len(FORMAT_CHARS) >= 150 and {"\u200b", "\u202d", "\u2066", "\ufeff"} <= set(
        FORMAT_CHARS
    )


@pytest.mark.parametrize("region", [r for r in ALL_REGIONS if emergency_pattern(r)])
def test_expansion_is_exactly_the_pattern_language(region: str) -> None:
    pattern = emergency_pattern(region)
    assert pattern is not None
    expanded = expand(pattern)
    assert all(re.fullmatch(pattern, number) for number in expanded)
    # brute force over every digit string of the short lengths: nothing the pattern accepts is
    # missing from the expansion
    for length in range(1, 5):
        for digits in itertools.product("0123456789", repeat=length):
            number = "".join(digits)
            assert (re.fullmatch(pattern, number) is not None) == (number in expanded), number


# --- emergency numbers in disguise are hidden ---------------------------------------------------


def test_every_emergency_number_of_every_region_is_hidden_in_disguise() -> None:
    """Deterministic: each (region, emergency number) written plainly, and disguised in a digit
    script, with format characters and a separator; scripts, format characters and separators
    rotate so that every one of them is used."""
    misses = []
    for i, (region, number) in enumerate(EMERGENCY):
        zero = DIGIT_ZEROS[i % len(DIGIT_ZEROS)]
        fmt = FORMAT_CHARS[i % len(FORMAT_CHARS)]
        sep = SEPARATORS[i % len(SEPARATORS)]
        code = phonenumbers.country_code_for_region(region)
        forms = [number, disguise(number, zero, fmt, sep), in_script(number, zero)]
        if code:
            forms.append(f"+{in_script(str(code), zero)}{fmt}{in_script(number, zero)}")
        for raw in forms:
            result = normalize_number(raw, region)
            if (result.number_class, result.raw) != ("emergency", raw):
                misses.append((region, number, raw, result.number_class))
    assert misses == []


@pytest.mark.parametrize("zero", DIGIT_ZEROS, ids=lambda z: f"U+{ord(z):04X}")
def test_every_digit_script_hides_emergency_and_116_numbers(zero: str) -> None:
    for region, number in [("NL", "112"), ("US", "911"), ("GB", "999"), ("FR", "15")]:
        for raw in (in_script(number, zero), "\u200b" + in_script(number, zero) + "\u200f"):
            assert normalize_number(raw, region).number_class == "emergency", raw
    assert normalize_number(disguise("110", zero, "\u202d", "\u2013"), "DE").number_class == (
        "emergency"
    )
    assert normalize_number(in_script("116123", zero), "BE").number_class == "social_value"
    assert normalize_number(disguise("116000", zero, "\u2066", "-"), "NL").e164 == "+31116000"


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(EMERGENCY),
    st.sampled_from(DIGIT_ZEROS),
    st.lists(st.tuples(st.integers(1, 8), st.sampled_from(INSERTS)), max_size=4),
    st.sampled_from(["", "tel:", "sip:", '"Help" <sip:', "+CC", "\uff0bCC"]),
)
def test_emergency_numbers_in_any_script_with_inserts_are_hidden(
    pair: tuple[str, str], zero: str, inserts: list[tuple[int, str]], form: str
) -> None:
    region, number = pair
    chars = list(in_script(number, zero))
    for position, char in inserts:  # between digits, never before the first one
        chars.insert(min(position, len(chars)), char)
    written = "".join(chars)
    if form.endswith("CC"):
        code = phonenumbers.country_code_for_region(region)
        if not code:
            return
        raw = form[:-2] + in_script(str(code), zero) + written
    else:
        raw = form + written + ("@pbx.example>" if form.startswith('"') else "")
    result = normalize_number(raw, region)
    assert (result.number_class, result.e164, result.raw) == ("emergency", None, raw)


# --- 116 numbers in disguise are hidden ---------------------------------------------------------


def test_every_116_number_in_every_region_is_hidden_in_disguise() -> None:
    misses = []
    for i, (region, number) in enumerate(itertools.product(ALL_REGIONS, SOCIAL_VALUE)):
        code = phonenumbers.country_code_for_region(region)
        zero = DIGIT_ZEROS[i % len(DIGIT_ZEROS)]
        fmt, sep = FORMAT_CHARS[i % len(FORMAT_CHARS)], SEPARATORS[i % len(SEPARATORS)]
        raw = disguise(number, zero, fmt, sep)
        result = normalize_number(raw, region)
        expected = f"+{code}{number}" if code else None
        if (result.number_class, result.e164, result.raw) != ("social_value", expected, raw):
            misses.append((region, raw, result))
    assert misses == []


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(ALL_REGIONS),
    st.from_regex(r"116[0-9]{3}", fullmatch=True),
    st.sampled_from(DIGIT_ZEROS),
    st.lists(st.tuples(st.integers(1, 5), st.sampled_from(INSERTS)), max_size=4),
    st.sampled_from(["national", "+CC", "tel:", "sip:"]),
)
def test_116_numbers_in_any_script_with_inserts_are_hidden(
    region: str, number: str, zero: str, inserts: list[tuple[int, str]], form: str
) -> None:
    chars = list(in_script(number, zero))
    for position, char in inserts:
        chars.insert(position, char)
    written = "".join(chars)
    code = phonenumbers.country_code_for_region(region)
    if form == "+CC":
        if not code:
            return
        raw = "+" + in_script(str(code), zero) + written
    else:
        raw = ("" if form == "national" else form) + written
    result = normalize_number(raw, region)
    assert result.number_class == "social_value" and result.raw == raw
    assert result.e164 == (f"+{code}{number}" if code else None)


# --- valid numbers in other scripts are E.164 -------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        (in_script("020 123 4567", FULLWIDTH), "NL", "+31201234567"),
        ("\uff0b" + in_script("31 20 123 4567", FULLWIDTH), "NL", "+31201234567"),
        (in_script("06-12345678", ARABIC_INDIC), "NL", "+31612345678"),
        (in_script("020\u200c1234567", PERSIAN), "NL", "+31201234567"),
        ("\u202e" + in_script("030 123456", DEVANAGARI) + "\u202c", "DE", "+4930123456"),
        ("\u2067(201)\u2013555\u20100123\u2069", "US", "+12015550123"),
        ("sip:%EF%BC%90%EF%BC%92%EF%BC%90%E2%80%8B1234567@pbx.example", "NL", "+31201234567"),
        ("\ufeff020\u00ad123\u00ad4567", "NL", "+31201234567"),
    ],
)
def test_valid_numbers_written_in_other_scripts_are_e164(raw: str, region: str, e164: str) -> None:
    assert normalize_number(raw, region) == NormalizedNumber(raw, region, e164, "pstn", True)


def test_extensions_and_feature_codes_in_other_scripts_show_ascii() -> None:
    number = normalize_number("\uff12\uff10\uff11", "NL")
    assert (number.number_class, display_number(number), number.raw) == (
        "extension",
        "201",
        "\uff12\uff10\uff11",
    )
    assert display_number(normalize_number("\uff0a\uff19\uff17", "NL")) == "*97"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (in_script("020 123", FULLWIDTH), "+3120123"),
        (in_script("06-12345678", ARABIC_INDIC), "+31612345678"),
        ("\u202d+31 20\u200b", "+3120"),
        ("\uff0b\uff13\uff11", "+31"),
        (in_script("0031 20", PERSIAN), "+3120"),
        ("+31 20 123 4567 ext. 12", "+31201234567"),
    ],
)
def test_query_number_filter_folds_like_the_event_path(text: str, expected: str) -> None:
    assert normalize_query_number(text, "NL") == expected


# --- withheld markers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        # FreeSWITCH / Kazoo
        "0000000000",
        "UNKNOWN",
        "Unknown",
        "anonymous",
        '"anonymous" <sip:0000000000@pbx.example>',
        # Asterisk
        "<unknown>",
        '"Anonymous" <sip:anonymous@anonymous.invalid>',
        "Unknown Caller",
        "Unavailable",
        # gateways: AudioCodes writes the anonymous URI without a scheme
        '"anonymous" <anonymous@anonymous.invalid>',
        "anonymous@anonymous.invalid",
        "Private",
        # carriers, caller-id displays, handset logs
        "ANONYMOUS",
        "RESTRICTED",
        "Restricted",
        "Withheld",
        "WITHHELD",
        "PRIVATE",
        "Private Number",
        "PRIVATE CALLER",
        "UNKNOWN NAME",
        "UNKNOWN NUMBER",
        "OUT OF AREA",
        "Out-of-Area",
        "out_of_area",
        "UNAVAILABLE",
        "No Number",
        "No Caller ID",
        "No CallerID",
        "Blocked",
        "Anonymous Caller",
        # disguised markers
        "\uff21\uff4e\uff4f\uff4e\uff59\uff4d\uff4f\uff55\uff53",
        "anony\u200bmous",
        "\u202eanonymous\u202c",
        "sip:%E2%80%8Banonymous@pbx.example",
        "  private  ",
    ],
)
def test_free_text_withheld_markers(raw: str) -> None:
    number = normalize_number(raw, "US")
    assert (number.number_class, number.e164, number.raw) == ("withheld", None, raw)
    assert display_number(number) == "anonymous"


@pytest.mark.parametrize(
    ("raw", "number_class"),
    [
        # single letters are no markers: Asterisk's "o" is the operator extension, "s" the start
        # extension; the Bellcore "P"/"O" codes never reach a number field (see core/withheld.py)
        ("o", "invalid"),
        ("O", "invalid"),
        ("P", "invalid"),
        ("s", "invalid"),
        ("Anonymous Bank", "invalid"),
        ("unknown2", "invalid"),
        ("000000000", "invalid"),  # nine zeros: not FreeSWITCH's default
        ("+", "invalid"),
        ("sip:alice@example.com", "invalid"),
    ],
)
def test_near_markers_are_not_withheld(raw: str, number_class: str) -> None:
    assert normalize_number(raw, "US").number_class == number_class


def test_every_marker_is_recognised_in_every_case() -> None:
    for marker in WITHHELD_MARKERS:
        for variant in (marker, marker.upper(), marker.title(), marker.replace(" ", "-")):
            assert is_withheld_text(variant), variant
            assert normalize_number(variant, "NL").number_class == "withheld", variant


# --- extension suffixes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+31 20 123 4567 ext. 12", "NL", "+31201234567"),
        ("+31 20 123 4567 ext 12", "NL", "+31201234567"),
        ("+31 20 123 4567 extension 12", "NL", "+31201234567"),
        ("+31 20 123 4567 x12", "NL", "+31201234567"),
        ("+31 20 123 4567 x 12", "NL", "+31201234567"),
        ("+31 20 123 4567 X12", "NL", "+31201234567"),
        ("+31201234567;ext=12", "NL", "+31201234567"),
        ("+31 20 123 4567#12", "NL", "+31201234567"),
        ("+31 20 123 4567 #12", "NL", "+31201234567"),
        ("+31 20 123 4567,12", "NL", "+31201234567"),
        ("+31 20 123 4567;12", "NL", "+31201234567"),
        ("020 123 4567 ext. 12", "NL", "+31201234567"),
        ("020-1234567 x12", "NL", "+31201234567"),
        ("0031 20 123 4567 ext 9", "NL", "+31201234567"),
        ("(201) 555-0123 ext. 4567", "US", "+12015550123"),
        ("+1 201-555-0123 x4567", "US", "+12015550123"),
        ("030 123456 - 22#", "DE", "+4930123456"),
        ("#31#020 1234567 x12", "NL", "+31201234567"),
        ("*67 201 555 0123 x5", "US", "+12015550123"),
        ('"Sales" <sip:+31201234567;ext=12@pbx.example>', "NL", "+31201234567"),
        ("tel:+31-20-123-4567;ext=12", "NL", "+31201234567"),
        (
            "\uff0b" + in_script("31 20 123 4567 \uff45\uff58\uff54 12", FULLWIDTH),
            "NL",
            "+31201234567",
        ),
        ("+31 20 123 4567 \u0434\u043e\u0431 12", "NL", "+31201234567"),
        ("+31 20 123 4567 anexo 12", "NL", "+31201234567"),
    ],
)
def test_numbers_with_an_extension_suffix_are_the_main_number(
    raw: str, region: str, e164: str
) -> None:
    assert normalize_number(raw, region) == NormalizedNumber(raw, region, e164, "pstn", True)
    assert normalize_query_number(raw, region) == e164


def test_extension_suffix_with_outside_line() -> None:
    number = normalize_number("9 0121 234 5678 x12", "GB", "9")
    assert (number.number_class, number.e164) == ("pstn", "+441212345678")


@pytest.mark.parametrize(
    ("raw", "region", "number_class"),
    [
        ("112 ext 5", "NL", "emergency"),  # the main number decides: hidden
        ("+31 112 x5", "NL", "emergency"),
        ("116000 x1", "NL", "social_value"),
        ("201 x5", "NL", "invalid"),  # an internal extension with a suffix: not a PSTN number
        ("+31 112 345 678 x5", "NL", "invalid"),  # main number possible but not valid
        ("alice x12", "NL", "invalid"),
        ("+31 20 123 4567 x12 x13", "NL", "invalid"),  # one suffix only
    ],
)
def test_extension_suffix_main_number_rules(raw: str, region: str, number_class: str) -> None:
    assert normalize_number(raw, region).number_class == number_class


# --- the folding itself -------------------------------------------------------------------------


def test_fold_leaves_ascii_alone() -> None:
    text = "sip:+31 (0)20-123.4567;ext=1@pbx"
    assert fold_dial_text(text) is text


def test_fold_maps_every_decimal_digit_and_drops_every_format_character() -> None:
    for zero in DIGIT_ZEROS:
        assert fold_dial_text("".join(chr(ord(zero) + d) for d in range(10))) == "0123456789"
    assert fold_dial_text("1" + "".join(FORMAT_CHARS) + "2") == "12"
    # digits that are not decimal digits ("No", "Nl") read as their value
    assert fold_dial_text("\u00b2\u2460\u2082\u216b\u2776") == "212121"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_fold_is_idempotent_and_leaves_no_foreign_digit_or_format_character(text: str) -> None:
    folded = fold_dial_text(text)
    assert fold_dial_text(folded) == folded
    for ch in folded:
        assert ch.isascii() or unicodedata.category(ch) not in ("Nd", "Cf")
