"""Number normalization: every PBX form, per region; emergency and 116 numbers; query numbers."""

from __future__ import annotations

import pytest

from cdrstream.core.emergency import SUPPLEMENT, is_emergency
from cdrstream.core.numbers import (
    NormalizedNumber,
    display_number,
    normalize_number,
    normalize_query_number,
)
from cdrstream.core.social_value import is_social_value

# region -> (E.164, forms a PBX writes it in, (form with outside line, outside line))
PSTN_FORMS: dict[str, tuple[str, list[str], tuple[str, str]]] = {
    "NL": (
        "+31201234567",
        [
            "+31 20 123 4567",
            "+31201234567",
            "0031201234567",
            "020-1234567",
            "020 123 4567",
            "31201234567",
            "+31 (0)20 123 4567",
            "tel:+31-20-123-4567",
            "sip:+31201234567@pbx.example;user=phone",
            "sip:0201234567;phone-context=+31@pbx.example",
            '"Reception" <sip:+31201234567@pbx.example>',
            "Reception <sip:0201234567@pbx.example>",
            '"Reception" <sip:+31201234567@pbx.example>;tag=abc',
            "tel:020-123-4567;phone-context=+31",
            "sips:%2B31201234567@pbx.example",
            "*31#0201234567",
            "#31#0201234567",
            "*670201234567",
            "  020 123 4567  ",
        ],
        ("0020 1234567", "0"),
    ),
    "BE": (
        "+3225111234",
        [
            "02 511 12 34",
            "0032 2 511 12 34",
            "+32 (0)2 511 12 34",
            "3225111234",
            "#31#025111234",
            "tel:+32-2-511-12-34",
        ],
        ("0 02 511 12 34", "0"),
    ),
    "DE": (
        "+4930123456",
        [
            "030 123456",
            "030/123456",
            "0049 30 123456",
            "+49 (0)30 123456",
            "4930123456",
            "#31#030123456",
            "sip:030123456;phone-context=+49@pbx.example",
        ],
        ("0030 123456", "0"),
    ),
    "FR": (
        "+33123456789",
        [
            "01 23 45 67 89",
            "01.23.45.67.89",
            "0033 1 23 45 67 89",
            "+33 (0)1 23 45 67 89",
            "33123456789",
            "#31#0123456789",
        ],
        ("0 01 23 45 67 89", "0"),
    ),
    "GB": (
        "+441212345678",
        [
            "0121 234 5678",
            "0044 121 234 5678",
            "+44 (0)121 234 5678",
            "441212345678",
            "141 0121 234 5678",
            "#31#01212345678",
        ],
        ("9 0121 234 5678", "9"),
    ),
    "ES": (
        "+34912345678",
        ["912 34 56 78", "0034 912 34 56 78", "34912345678", "*67912345678"],
        ("0 912 34 56 78", "0"),
    ),
    "IT": (
        "+390212345678",
        ["02 1234 5678", "0039 02 1234 5678", "+39 02 1234 5678"],
        ("0 02 1234 5678", "0"),
    ),
    "PL": (
        "+48123456789",
        ["12 345 67 89", "0048 12 345 67 89", "48123456789"],
        ("0 12 345 67 89", "0"),
    ),
    "SE": (
        "+468123456",
        ["08-12 34 56", "0046 8 12 34 56", "+46 (0)8 12 34 56"],
        ("0 08-12 34 56", "0"),
    ),
    "US": (
        "+12015550123",
        [
            "(201) 555-0123",
            "1 (201) 555-0123",
            "011 1 201 555 0123",
            "*67 201 555 0123",
            "+1-201-555-0123",
        ],
        ("9 1 201 555 0123", "9"),
    ),
}

PSTN_CASES = [
    (region, raw, e164) for region, (e164, forms, _) in PSTN_FORMS.items() for raw in forms
]


@pytest.mark.parametrize(("region", "raw", "e164"), PSTN_CASES)
def test_every_pbx_form_normalizes_to_e164(region: str, raw: str, e164: str) -> None:
    assert normalize_number(raw, region) == NormalizedNumber(raw, region, e164, "pstn", True)


@pytest.mark.parametrize("region", sorted(PSTN_FORMS))
def test_outside_line_prefix_is_removed(region: str) -> None:
    e164, _, (raw, outside_line) = PSTN_FORMS[region]
    number = normalize_number(raw, region, outside_line)
    assert (number.e164, number.number_class, number.valid) == (e164, "pstn", True)


def test_mobile_and_foreign_numbers() -> None:
    assert normalize_number("06-12345678", "NL").e164 == "+31612345678"
    assert normalize_number("+44 7400 123456", "NL").e164 == "+447400123456"
    assert normalize_number("0044 7400 123456", "DE").e164 == "+447400123456"
    assert normalize_number("01512 3456789", "DE").e164 == "+4915123456789"


def test_outside_line_does_not_break_numbers_dialled_without_it() -> None:
    # NL tenant with outside line 0 whose PBX logged the number without it
    assert normalize_number("0031201234567", "NL", "0").e164 == "+31201234567"
    assert normalize_number("+31201234567", "NL", "0").e164 == "+31201234567"
    assert normalize_number("00031201234567", "NL", "0").e164 == "+31201234567"


@pytest.mark.parametrize(
    "raw",
    [
        "anonymous",
        "Anonymous",
        "ANONYMOUS",
        "restricted",
        "unknown",
        "private",
        "withheld",
        "",
        "   ",
        "sip:anonymous@anonymous.invalid",
        '"Anonymous" <sip:anonymous@anonymous.invalid>',
        "sip:caller@anonymous.invalid",
        "sip:restricted@pbx.example",
    ],
)
def test_withheld_markers(raw: str) -> None:
    number = normalize_number(raw, "NL")
    assert (number.number_class, number.e164) == ("withheld", None)
    assert display_number(number) == "anonymous"


@pytest.mark.parametrize(
    ("raw", "region", "display"),
    [
        ("201", "NL", "201"),
        ("1", "NL", "1"),
        ("4711", "DE", "4711"),
        ("30123", "DE", "30123"),  # valid only as 030 123: as dialled, an extension
        ("200001", "SE", "200001"),
        ("123456", "AT", "123456"),
        ("sip:201@pbx.example", "NL", "201"),
        ('"Alice" <sip:201@pbx.example>', "NL", "201"),
        ("1120", "NL", "1120"),  # starts with 112, is not 112
        ("112112", "NL", "112112"),
        ("999", "NL", "999"),  # emergency in GB, not in NL
        ("110", "NL", "110"),
        ("15", "DE", "15"),
        ("*97", "NL", "*97"),  # PBX feature code
        ("*72#201", "NL", "*72#201"),
    ],
)
def test_short_internal_numbers_are_extensions(raw: str, region: str, display: str) -> None:
    number = normalize_number(raw, region)
    assert (number.number_class, number.e164) == ("extension", None)
    assert display_number(number) == display


def test_short_numbers_valid_as_dialled_are_pstn() -> None:
    # NL municipality number 14 020 is dialled like that: a PSTN number, not an extension
    assert normalize_number("14020", "NL") == NormalizedNumber(
        "14020", "NL", "+3114020", "pstn", True
    )


def test_short_digits_starting_with_0_are_not_extensions() -> None:
    assert normalize_number("0201", "NL").number_class != "extension"


@pytest.mark.parametrize(
    ("raw", "display", "dialable"),
    [
        ("sip:alice@example.com", "alice", False),
        ("abc", "abc", False),
        ("0800-FLOWERS", "0800-FLOWERS", False),
        ("+", "+", False),
        ("#31#", "#31#", False),
        ("12345678901234567890123", "12345678901234567890123", True),  # digits only: too long
        ("s", "s", False),
    ],
)
def test_unparseable_numbers_are_invalid_and_keep_their_text(
    raw: str, display: str, dialable: bool
) -> None:
    number = normalize_number(raw, "NL")
    assert number == NormalizedNumber(raw, "NL", None, "invalid", False, None, dialable)
    assert display_number(number) == display


def test_possible_but_not_valid_numbers_keep_e164() -> None:
    assert normalize_number("+31 112 345 678", "NL") == NormalizedNumber(
        "+31 112 345 678", "NL", "+31112345678", "pstn", False
    )
    assert normalize_number("0112345678", "NL").e164 == "+31112345678"


def test_unknown_region_never_raises() -> None:
    assert normalize_number("020 123 4567", "ZZ").number_class == "invalid"
    assert normalize_number("+31201234567", "ZZ").e164 == "+31201234567"
    assert normalize_number("+31201234567", "nl").e164 == "+31201234567"


# --- emergency --------------------------------------------------------------------------

# (region, raw, outside line)
EMERGENCY_CASES = [
    ("NL", "112", ""),
    ("NL", "911", ""),
    ("NL", "+31112", ""),
    ("NL", "+31 112", ""),
    ("NL", "0031112", ""),
    ("NL", "0112", "0"),
    ("NL", "0112", ""),  # outside line not configured: 0 + exact 112, not a valid number
    ("NL", "#31#112", ""),
    ("NL", "*31#112", ""),
    ("NL", "tel:112", ""),
    ("NL", "sip:112@pbx.example", ""),
    ("NL", "00031112", "0"),
    ("BE", "100", ""),
    ("BE", "101", ""),
    ("BE", "112", ""),
    ("BE", "+32100", ""),
    ("BE", "0032101", ""),
    ("DE", "110", ""),
    ("DE", "112", ""),
    ("DE", "+49110", ""),
    ("DE", "0049112", ""),
    ("DE", "0110", "0"),
    ("DE", "0110", ""),
    ("FR", "15", ""),
    ("FR", "17", ""),
    ("FR", "18", ""),
    ("FR", "112", ""),
    ("FR", "114", ""),  # supplement
    ("FR", "115", ""),  # supplement
    ("FR", "119", ""),  # supplement
    ("FR", "+3315", ""),
    ("FR", "003317", ""),
    ("FR", "015", "0"),
    ("NL", "+33115", ""),  # the French 115 dialled internationally from NL
    ("GB", "999", ""),
    ("GB", "112", ""),
    ("GB", "+44999", ""),
    ("GB", "0044999", ""),
    ("GB", "9999", "9"),
    ("GB", "9999", ""),
    ("GB", "141999", ""),
    ("ES", "112", ""),
    ("ES", "091", ""),  # supplement
    ("ES", "062", ""),  # supplement
    ("ES", "080", ""),  # supplement
    ("ES", "085", ""),
    ("ES", "+34091", ""),
    ("IT", "112", ""),
    ("IT", "113", ""),
    ("IT", "115", ""),
    ("IT", "118", ""),
    ("IT", "1530", ""),  # supplement
    ("IT", "+39113", ""),
    ("PL", "112", ""),
    ("PL", "997", ""),
    ("PL", "998", ""),
    ("PL", "999", ""),
    ("PL", "984", ""),  # supplement
    ("PL", "985", ""),  # supplement
    ("PL", "+48997", ""),
    ("SE", "112", ""),
    ("SE", "90000", ""),
    ("SE", "+46112", ""),
    ("US", "911", ""),
    ("US", "112", ""),
    ("US", "+1911", ""),
    ("US", "011 1 911", ""),
    ("US", "9911", "9"),
    ("US", "9911", ""),
    ("US", "*67911", ""),
    ("AT", "140", ""),  # supplement
    ("CH", "1414", ""),  # supplement
]


@pytest.mark.parametrize(("region", "raw", "outside_line"), EMERGENCY_CASES)
def test_emergency_numbers(region: str, raw: str, outside_line: str) -> None:
    number = normalize_number(raw, region, outside_line)
    assert (number.number_class, number.e164) == ("emergency", None)


@pytest.mark.parametrize(
    ("region", "raw", "e164"),
    [
        # real subscriber numbers that begin with emergency digits
        ("NL", "+31911725999", "+31911725999"),
        ("NL", "091 172 5999", "+31911725999"),
        ("BE", "010 08 58 20", "+3210085820"),
        ("FR", "01 54 44 51 74", "+33154445174"),
        ("FR", "01 12 94 25 11", "+33112942511"),
        ("FR", "+33115755526", "+33115755526"),
        ("ES", "912 88 26 78", "+34912882678"),
        ("SE", "011-21 47 51", "+4611214751"),
    ],
)
def test_subscriber_numbers_starting_with_emergency_digits_are_not_emergency(
    region: str, raw: str, e164: str
) -> None:
    number = normalize_number(raw, region)
    assert (number.number_class, number.e164, number.valid) == ("pstn", e164, True)


def test_outside_line_heuristic_applies_only_without_configured_outside_line() -> None:
    # with outside line 9 configured, "0112" is not "outside line + 112"
    assert normalize_number("0112", "NL", "9").number_class != "emergency"
    assert normalize_number("00112", "NL", "0").number_class != "emergency"


def test_emergency_check_is_exact_and_per_region() -> None:
    assert is_emergency("112", "NL")
    assert not is_emergency("1120", "NL")
    assert not is_emergency("11", "NL")
    assert not is_emergency("999", "NL")
    assert is_emergency("999", "GB")
    assert not is_emergency("112", "ZZ")
    assert not is_emergency("", "NL")
    # the check itself takes ASCII digits only; normalize_number folds other scripts first
    assert not is_emergency("\uff11\uff11\uff12", "NL")
    assert normalize_number("\uff11\uff11\uff12", "NL").number_class == "emergency"


def test_supplement_entries_are_short_digit_strings() -> None:
    for region, numbers in SUPPLEMENT.items():
        assert len(region) == 2 and region.isupper()
        for number in numbers:
            assert number.isdigit() and 2 <= len(number) <= 6
            assert is_emergency(number, region)


# --- 116 ---------------------------------------------------------------------------------

SOCIAL_REGIONS = ("NL", "BE", "DE", "FR", "GB", "ES", "IT", "PL", "SE", "US")


@pytest.mark.parametrize("region", SOCIAL_REGIONS)
@pytest.mark.parametrize("digits", ["116000", "116006", "116111", "116117", "116123"])
def test_116_numbers_dialled_nationally(region: str, digits: str) -> None:
    number = normalize_number(digits, region)
    assert number.number_class == "social_value"


@pytest.mark.parametrize(
    ("raw", "region", "outside_line", "e164"),
    [
        ("116000", "NL", "", "+31116000"),
        ("116 123", "BE", "", "+32116123"),
        ("+32116000", "NL", "", "+32116000"),
        ("+49 116 117", "NL", "", "+49116117"),
        ("0049116117", "NL", "", "+49116117"),
        ("0032116000", "DE", "", "+32116000"),
        ("01131116000", "US", "", "+31116000"),
        ("#31#116123", "NL", "", "+31116123"),
        ("0116000", "NL", "0", "+31116000"),
        ("tel:116006", "FR", "", "+33116006"),
        ("sip:116111@pbx.example", "GB", "", "+44116111"),
    ],
)
def test_116_numbers_in_every_form(raw: str, region: str, outside_line: str, e164: str) -> None:
    number = normalize_number(raw, region, outside_line)
    assert (number.number_class, number.e164) == ("social_value", e164)


@pytest.mark.parametrize("raw", ["1160000", "11600", "116", "+3111600", "116abc"])
def test_not_116_numbers(raw: str) -> None:
    assert normalize_number(raw, "NL").number_class != "social_value"


def test_is_social_value_is_exact() -> None:
    assert is_social_value("116000")
    assert not is_social_value("1160001")
    assert not is_social_value("117000")
    assert not is_social_value("116\u0660\u0660\u0660")  # ASCII only: folding is done before
    assert normalize_number("116\u0660\u0660\u0660", "NL").e164 == "+31116000"


def test_normalized_e164_is_idempotent_for_table() -> None:
    for region, raw, e164 in PSTN_CASES:
        again = normalize_number(e164, region)
        assert again.e164 == e164, raw


# --- the API's number filter ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("020 123", "NL", "+3120123"),
        ("+31 20", "NL", "+3120"),
        ("0031 20 1234567", "NL", "+31201234567"),
        ("06-12345678", "NL", "+31612345678"),
        ("+31 (0)20 123 4567", "NL", "+31201234567"),
        ("0031", "NL", "+31"),
        ("3120", "NL", "+3120"),
        ("0", "NL", "+31"),
        ("612", "NL", "+31612"),
        ("030 12", "DE", "+493012"),
        ("06 1234", "IT", "+39061234"),
        ("011 44 20", "US", "+4420"),
        ("(201) 555", "US", "+1201555"),
        ("tel:+31-20-123-4567", "NL", "+31201234567"),
        ("+", "NL", None),
        ("00", "NL", None),
        ("", "NL", None),
        ("   ", "NL", None),
        ("abc", "NL", None),
        ("020 abc", "NL", None),
        ("anonymous", "NL", None),
        ("020", "ZZ", None),
    ],
)
def test_normalize_query_number(text: str, region: str, expected: str | None) -> None:
    assert normalize_query_number(text, region) == expected
