"""The digits a switch would dial (core/dialled_digits.py), judged through `normalize_number`.

Each class of disguise that issue 20 found shown is hidden, with the rule and the candidate it
matched; real subscriber numbers that merely contain those digits are shown. The guard set is
libphonenumber's own data: every example number of every type of every region stays shown, and
every emergency number of every region (its short-number data) is hidden in every disguise.
"""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from phonenumbers.phonemetadata import PhoneMetadata

from cdrstream.core.dialled_digits import PRESENTATION_CODES, dialled_digits
from cdrstream.core.numbers import normalize_number
from tests.unit.phone_data import EMERGENCY

NL_112 = "emergency 112 (NL), as dialled"
PLUS = "after international prefix +, country code"

# (raw, region, outside line, hidden_by): the class, the candidate and how it was reached,
# written by hand
HIDDEN = [
    # URI parameters and host without a scheme
    ("112;phone-context=+31", "NL", "", NL_112),
    ("112;isub=1", "NL", "", NL_112),
    ("112;postd=1", "NL", "", NL_112),
    ("112@carrier.example", "NL", "", NL_112),
    ("112@carrier.example;user=phone", "NL", "", NL_112),
    ("999;phone-context=+1", "AG", "", "emergency 999 (AG), as dialled"),
    ("15;phone-context=+33", "NL", "", "emergency 15 (FR), as dialled"),
    # post-dial: pauses, waits, DTMF after the number
    ("112w1", "NL", "", NL_112),
    ("112p1", "NL", "", NL_112),
    ("112pp", "NL", "", NL_112),
    ("112W", "NL", "", NL_112),
    ("112P9", "NL", "", NL_112),
    ("112,,1", "NL", "", NL_112),
    ("112#,1", "NL", "", NL_112),
    ("tel:911;postd=pp22", "US", "", "emergency 911 (US), as dialled"),
    # 116 behind prefixes
    ("0116000", "NL", "", "social_value 116000 (+31), after guessed outside line 0"),
    ("9116000", "NL", "", "social_value 116000 (+31), after guessed outside line 9"),
    ("141116000", "GB", "", "social_value 116000 (+44), after presentation code 141"),
    ("0116000", "IT", "0", "social_value 116000 (+39), after outside line 0"),
    # the trunk prefix after a country code, without brackets
    ("+310112", "NL", "", f"emergency 112 (NL), {PLUS} 31, trunk prefix 0"),
    ("+31-0-112", "NL", "", f"emergency 112 (NL), {PLUS} 31, trunk prefix 0"),
    ("+11911", "US", "", f"emergency 911 (US), {PLUS} 1, trunk prefix 1"),
    (
        "0031 0 112",
        "DE",
        "",
        "emergency 112 (NL), after international prefix 00, country code 31, trunk prefix 0",
    ),
    ("+7 8 112", "NL", "", f"emergency 112 (RU), {PLUS} 7, trunk prefix 8"),
    # other ASCII forms
    ("+112", "NL", "", "emergency 112 (NL), after stray +"),
    ("112x", "NL", "", NL_112),
    ("112 (alarm)", "NL", "", NL_112),
    ("1831000", "AU", "", "emergency 000 (AU), after presentation code 1831"),
    ("1470 999", "GB", "", "emergency 999 (GB), after presentation code 1470"),
    ("184 110", "JP", "", "emergency 110 (JP), after presentation code 184"),
    (
        "9 141 999",
        "GB",
        "",
        "emergency 999 (GB), after guessed outside line 9, presentation code 141",
    ),
    # carrier-select prefixes
    ("01012 112", "DE", "", "emergency 112 (DE), after carrier prefix 01012"),
    ("1010288 911", "US", "", "emergency 911 (US), after carrier prefix 1010288"),
    ("1601 116123", "NL", "", "social_value 116123 (+31), after carrier prefix 1601"),
    # lookalikes that compatibility folding or their numeric value turns into digits
    ("\u00b9\u00b9\u00b2", "NL", "", NL_112),  # superscript
    ("\u2081\u2081\u2082", "NL", "", NL_112),  # subscript
    ("\u2460\u2460\u2461", "NL", "", NL_112),  # circled
    ("\u2776\u2776\u2461", "NL", "", NL_112),  # dingbat negative circled
    ("\u2160\u21602", "NL", "", NL_112),  # Roman numeral one
    ("\u216a2", "NL", "", NL_112),  # Roman numeral eleven
    ("1\ufe0f\u20e31\ufe0f\u20e32\ufe0f\u20e3", "NL", "", NL_112),  # keycaps
    ("\U0001d7d9\U0001d7d9\U0001d7da", "NL", "", NL_112),  # double-struck
    # invisible characters that NFKC keeps: combining, variation selector, fillers
    ("1\u034f12", "NL", "", NL_112),
    ("11\ufe0f2", "NL", "", NL_112),
    ("1\u030112", "NL", "", NL_112),
    ("\u115f112", "NL", "", NL_112),
    ("112\u3164", "NL", "", NL_112),
    ("1\uffa01\U000e00202", "NL", "", NL_112),
]


@pytest.mark.parametrize(("raw", "region", "outside_line", "hidden_by"), HIDDEN)
def test_every_disguise_class_is_hidden_with_its_candidate(
    raw: str, region: str, outside_line: str, hidden_by: str
) -> None:
    number = normalize_number(raw, region, outside_line)
    expected_class = hidden_by.split()[0]
    assert (number.number_class, number.hidden_by, number.raw) == (expected_class, hidden_by, raw)


# (raw, region, E.164): real subscriber numbers that contain or start with service digits
SHOWN = [
    ("0116 496 0123", "GB", "+441164960123"),  # Leicester
    ("911 234 567", "ES", "+34911234567"),  # Madrid
    ("020 112 3456", "NL", "+31201123456"),  # Amsterdam
    ("+31 20 112 3456", "NL", "+31201123456"),
    ("+33 1 12 94 25 11", "FR", "+33112942511"),
    ("141 0121 234 5678", "GB", "+441212345678"),  # behind the presentation code
    ("01012 030 123456", "DE", "+4930123456"),  # behind a carrier prefix
    ("0116000", "IT", "+390116000"),  # a Turin number, valid as dialled: no outside line
    ("9116000", "CV", "+2389116000"),  # valid as dialled in Cape Verde
    ("+31201234567w123", "NL", "+31201234567"),  # post-dial DTMF after a real number
    ("+31 20 123 4567 ext. 12", "NL", "+31201234567"),
]


@pytest.mark.parametrize(("raw", "region", "e164"), SHOWN)
def test_subscriber_numbers_with_service_digits_are_shown(raw: str, region: str, e164: str) -> None:
    number = normalize_number(raw, region)
    assert (number.number_class, number.e164, number.valid, number.dialable) == (
        "pstn",
        e164,
        True,
        True,
    )


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("0800-FLOWERS", "US"),
        ("1a12", "NL"),
        ("II2", "NL"),  # Latin letters, not Roman numerals: a switch dials no letters
        ("020 123 4567 (mobile)", "NL"),
        ("sip:alice@example.com", "NL"),
        ("112\u00bd", "NL"),  # "1/2" is not a digit; the 112 in front still hides it
        ("+31 20 123 4567 x12 x13", "NL"),
        ("\u0661\u0661\u0662\u2044", "NL"),  # a fraction slash after Arabic-Indic 112
    ],
)
def test_text_left_after_the_number_is_not_dialable_unless_hidden(raw: str, region: str) -> None:
    number = normalize_number(raw, region)
    if number.number_class == "emergency":  # the number in front decides first
        assert raw.startswith(("112", "\u0661"))
    else:
        assert (number.number_class, number.dialable) == ("invalid", False)


def test_a_guessed_prefix_is_no_candidate_of_a_valid_number_but_a_configured_one_is() -> None:
    assert normalize_number("0116000", "IT").number_class == "pstn"
    assert normalize_number("0116000", "IT", "0").number_class == "social_value"
    assert normalize_number("9320221", "FM").number_class == "pstn"
    assert normalize_number("9320221", "FM", "9").number_class == "emergency"


def test_candidates_of_a_number() -> None:
    dialled = dialled_digits('"Alarm" <sip:+31(0)112;isub=1@gw.example>', "NL")
    assert (dialled.number, dialled.tail, dialled.region) == ("+31112", "", "NL")
    assert [(c.digits, c.country_code, c.via) for c in dialled.candidates] == [
        ("112", 31, "after international prefix +, country code 31"),
        ("31112", None, "after stray +"),
    ]
    dialled = dialled_digits("9#31#0112w5", "NL")  # a star code only leads: "#" is post-dial
    assert (dialled.presentation, dialled.number, dialled.post_dial) == ("", "9", "#31#0112w5")
    dialled = dialled_digits("#31#0112w5", "NL", "0")
    assert (dialled.presentation, dialled.number, dialled.post_dial) == ("#31#", "0112", "w5")
    assert [(c.digits, c.via, c.guarded) for c in dialled.candidates] == [
        ("0112", "as dialled", False),
        ("112", "after outside line 0", False),
    ]


# --- the guard set: libphonenumber's own data ---------------------------------------------------

TYPES = [
    getattr(PhoneNumberType, name)
    for name in dir(PhoneNumberType)
    if name.isupper() and name not in ("UNKNOWN", "FIXED_LINE_OR_MOBILE")
]
EXAMPLES = [
    (region, kind, example)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS)
    for kind in TYPES
    if (example := phonenumbers.example_number_for_type(region, kind)) is not None
]


def test_every_example_number_of_every_type_of_every_region_stays_shown() -> None:
    assert len({region for region, _, _ in EXAMPLES}) >= 240 and len(EXAMPLES) >= 1000
    wrong = []
    for region, kind, example in EXAMPLES:
        e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
        for fmt in (
            PhoneNumberFormat.E164,
            PhoneNumberFormat.NATIONAL,
            PhoneNumberFormat.INTERNATIONAL,
        ):
            raw = phonenumbers.format_number(example, fmt)
            number = normalize_number(raw, region)
            if (number.number_class, number.e164, number.valid) != ("pstn", e164, True):
                wrong.append((region, kind, raw, number))
    assert wrong == []


def _trunk(region: str) -> str:
    metadata = PhoneMetadata.metadata_for_region(region)
    return (metadata.national_prefix or "") if metadata is not None else ""


def _valid_as_written(raw: str, region: str) -> bool:
    """libphonenumber's own view: ``raw`` is a valid number of ``region`` dialled like this."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return False
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    return phonenumbers.is_valid_number(number) and "".join(filter(str.isdigit, national)) == raw


SUPERSCRIPT = "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
SUBSCRIPT = "".join(chr(0x2080 + d) for d in range(10))
CIRCLED = "\u24ea" + "".join(chr(0x2460 + d) for d in range(9))
ROMAN = "\u24ea" + "".join(chr(0x2160 + d) for d in range(9))  # no Roman zero: circled


def _in(table: str, digits: str) -> str:
    return "".join(table[int(d)] for d in digits)


def around(region: str, digits: str) -> dict[str, str]:
    """The disguise classes of issue 20 that write text around ``digits`` dialled in
    ``region``: parameters, host, post-dial, prefixes, trunk, remarks."""
    code = phonenumbers.country_code_for_region(region)
    trunk = _trunk(region)
    forms = {
        "uri parameter": f"{digits};isub=1",
        "post-dial parameter": f"{digits};postd=1",
        "host": f"{digits}@carrier.example",
        "wait": f"{digits}w1",
        "pause": f"{digits}p1",
        "pauses": f"{digits}pp",
        "upper wait": f"{digits}W",
        "commas": f"{digits},,1",
        "hash": f"{digits}#,1",
        "outside line 0": f"0{digits}",
        "outside line 9": f"9{digits}",
        "gsm clir": f"#31#{digits}",
        "star 67": f"*67{digits}",
        "stray plus": f"+{digits}",
        "x": f"{digits}x",
        "remark": f"{digits} (alarm)",
    }
    if code:
        forms["phone-context"] = f"{digits};phone-context=+{code}"
        if trunk:
            forms["trunk after code"] = f"+{code}{trunk}{digits}"
            forms["trunk between dashes"] = f"+{code}-{trunk}-{digits}"
    for prefix in PRESENTATION_CODES.get(region, ()):
        forms[f"presentation {prefix}"] = prefix + digits
    return forms


def inside(digits: str) -> dict[str, str]:
    """The disguise classes of issue 20 that change the digits themselves: lookalikes and
    invisible characters NFKC keeps."""
    return {
        "superscript": _in(SUPERSCRIPT, digits),
        "subscript": _in(SUBSCRIPT, digits),
        "circled": _in(CIRCLED, digits),
        "roman": _in(ROMAN, digits),
        "grapheme joiner": "\u034f".join(digits),
        "variation selector": digits + "\ufe0f",
        "combining acute": digits[0] + "\u0301" + digits[1:],
        "fillers": "\u115f" + digits + "\u3164",
    }


def _real_number(raw: str, region: str, digits: str) -> bool:
    """A guessed outside line in front of ``digits`` that libphonenumber calls a valid number
    as written is that subscriber's number (the tenant configures its outside line to hide
    it): ``0116000`` in IT, ``9116000`` in CV."""
    written = raw.replace("\x00", digits)
    return written[0] in "09" and written[1:] == digits and _valid_as_written(written, region)


def _class(digits: str) -> str:
    return "social_value" if len(digits) == 6 and digits.startswith("116") else "emergency"


SOCIAL_VALUE = [(region, "116000") for region in sorted(phonenumbers.SUPPORTED_REGIONS)]


def test_every_emergency_and_116_number_of_every_region_is_hidden_in_every_disguise() -> None:
    assert len(EMERGENCY) >= 800
    misses = []
    for region, digits in EMERGENCY + SOCIAL_VALUE:
        expected = _class(digits)
        for name, raw in {**around(region, digits), **inside(digits)}.items():
            if _real_number(raw, region, digits):
                continue
            number = normalize_number(raw, region)
            if number.number_class != expected or number.hidden_by is None:
                misses.append((region, digits, name, raw, number.number_class))
    assert misses == []


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(EMERGENCY + SOCIAL_VALUE),
    st.data(),
)
def test_disguises_combined_are_hidden(pair: tuple[str, str], data: st.DataObject) -> None:
    """Two disguises on top of each other: one inside (lookalike digits, invisible characters)
    and one around (prefixes, parameters, post-dial, trunk)."""
    region, digits = pair
    written = data.draw(st.sampled_from(sorted(inside(digits).values())))
    template = data.draw(st.sampled_from(sorted(around(region, "\x00").values())))
    if _real_number(template, region, digits):
        return
    raw = template.replace("\x00", written)
    assert normalize_number(raw, region).number_class == _class(digits), raw
