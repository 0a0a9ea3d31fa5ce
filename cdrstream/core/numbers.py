"""A and B numbers: from whatever the PBX wrote to E.164 and a class (contract §2, rule 7).

`normalize_number(raw, region, outside_line)` never raises and is cached (keyed on the raw
text). Steps, in order:

0. Folding (`cdrstream.core.text_folding`): every Unicode decimal digit becomes its ASCII digit
   (fullwidth ``\\uff11\\uff11\\uff12``, Arabic-Indic or Persian digits, ...), format characters
   go (zero-width ``1\\u200b12``, bidi ``\\u202d112``), Unicode dashes become ``-`` and fullwidth
   punctuation its ASCII form. Everything below sees only the folded text; ``raw`` stays as
   received. ASCII text is not touched.
1. Wrappers: a name-addr (``"Reception" <sip:...>``) keeps what is inside ``<>``; a ``sip:``/
   ``sips:``/``tel:`` URI keeps its (percent-decoded, then folded) user part, without password
   or parameters. A ``phone-context=+CC`` parameter makes the number parse in CC's region.
2. Withheld: the free-text markers PBXs and carriers write (`cdrstream.core.withheld`:
   ``anonymous``, ``Unknown``, ``<unknown>``, ``PRIVATE``, ``OUT OF AREA``, ``0000000000``,
   ... in any case and spacing), empty, or any URI or ``user@host`` on host
   ``anonymous.invalid`` -> ``withheld`` (shown as ``anonymous``).
3. Visual separators (spaces, ``-``, ``.``, ``/``, brackets) go; ``(0)`` after an international
   prefix goes (``+31 (0)20 ...``). A leading CLIR prefix goes: ``*31#``, ``#31#``, ``*67`` in
   every region, ``141`` in GB and IE.
4. What is left must be ``+digits`` or digits. Short strings of digits, ``*`` and ``#`` with at
   least one ``*``/``#`` are PBX feature codes (``*97``) -> ``extension``. A number with an
   extension suffix in any form libphonenumber recognises (``ext. 12``, ``x12``, ``;ext=12``,
   ``#12``, ``,12``, ...; found by libphonenumber's own extension stripper) is its main number:
   the text before the suffix goes through steps 3-9 once more and counts when it is a valid
   PSTN number (``pstn``, E.164 of the main number), an emergency or a 116 number. Anything else
   (letters, ``sip:alice@example.com``) -> ``invalid``, raw kept.
5. Services, checked on the digits as written and, when the tenant has an outside line, on the
   digits after it: ``116`` + three digits -> ``social_value``; an exact emergency number of the
   region (`cdrstream.core.emergency`) -> ``emergency``; the same after a country code
   (``+31112``, ``0031112``, ``+32116000``, ``0049116117``; the international prefix is the
   region's own, e.g. ``00`` or ``011``) -> the same classes, judged in that country's region.
6. An outside-line digit the tenant did not configure: ``0`` or ``9`` followed by an exact
   emergency number, when the whole string is not a valid number as dialled (``0112`` in NL,
   ``9911`` in US) -> ``emergency``, even where ``9911`` could be an extension: hiding such a
   call costs little, showing a call to 911 does not.
7. Extensions: 1-6 digits, no ``+``, not starting with ``0``, that are not a valid number *as
   dialled* in the region (``14020`` in NL is a valid PSTN number dialled like that; ``30123``
   in DE is only valid as ``030 123``, so it is an extension) -> ``extension``.
8. PSTN, with `phonenumbers`: the digits after the outside line first (when configured and
   present), then the digits as written. The first *valid* parse wins -> ``pstn``. ``phonenumbers``
   itself handles national (``020 1234567``), international-prefix (``0031...``) and own-country-
   code-without-plus (``31201234567``) forms.
9. Possible but not valid (right length, unassigned range) -> ``pstn`` with ``valid=False``,
   E.164 kept. Otherwise -> ``invalid``.

Which side gets the outside line is decided by `cdrstream.core.outcome` (the dialled side only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from urllib.parse import unquote

import phonenumbers
from phonenumbers import PhoneNumberFormat
from phonenumbers.phonemetadata import PhoneMetadata

# libphonenumber's maybeStripExtension, the very function `phonenumbers.parse` uses: the public
# API returns the extension's digits but not where the main number ends. Typed in phonenumbers'
# own stubs; the extension tests fail loudly should it ever move.
from phonenumbers.phonenumberutil import _maybe_strip_extension

from cdrstream.core.emergency import is_emergency
from cdrstream.core.social_value import is_social_value
from cdrstream.core.text_folding import fold_dial_text
from cdrstream.core.withheld import WITHHELD_MARKERS as WITHHELD_MARKERS
from cdrstream.core.withheld import is_withheld_text

NumberClass = Literal["pstn", "emergency", "social_value", "withheld", "invalid", "extension"]

NUMBER_CACHE_SIZE = 65_536
MAX_EXTENSION_DIGITS = 6
WITHHELD_DISPLAY = "anonymous"

_ANONYMOUS_HOST = "anonymous.invalid"
_CLIR_PREFIXES = ("*31#", "#31#", "*67")
_CLIR_141_REGIONS = frozenset({"GB", "IE"})

_NAME_ADDR = re.compile(r'\s*(?:"(?:[^"\\]|\\.)*"|[^"<]*)\s*<([^<>]*)>\s*(?:;.*)?', re.S)
_URI = re.compile(r"(sips?|tel):(.*)", re.S | re.I)
_SEPARATORS = re.compile(r"[\s\-./()\[\]]+")
_DIALABLE = re.compile(r"\+?[0-9]+")
_FEATURE_CODE = re.compile(r"[0-9*#]{1,10}")
_MAX_EXTENSION_INPUT = 250  # libphonenumber's own limit on what it parses


@dataclass(frozen=True, slots=True)
class NormalizedNumber:
    """One number as classified. ``e164`` is set for ``pstn`` (also when ``valid`` is False:
    possible-but-not-valid numbers keep their E.164 form) and for ``social_value``."""

    raw: str
    region: str
    e164: str | None
    number_class: NumberClass
    valid: bool


def _dial_string(raw: str) -> tuple[str, str | None]:
    """(the dialled text inside name-addr/URI wrappers, the URI's phone-context or None)."""
    text = raw.strip()
    m = _NAME_ADDR.fullmatch(text)
    if m is not None:
        text = m.group(1).strip()
    elif len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1].strip()
    m = _URI.fullmatch(text)
    if m is None:
        _, at, host = text.rpartition("@")
        if at and host.split(";", 1)[0].split(":", 1)[0].strip().lower() == _ANONYMOUS_HOST:
            return WITHHELD_DISPLAY, None  # "anonymous" <anonymous@anonymous.invalid>, no scheme
        return text, None
    rest = m.group(2)
    params: list[str] = []
    host = ""
    if m.group(1).lower() == "tel":
        number, *params = rest.split(";")
    else:
        user, at, hostpart = rest.partition("@")
        if not at:  # sip:201 (no host): the whole thing is the user part
            user, hostpart = rest, ""
        number, *params = user.split(";")
        number = number.split(":", 1)[0]  # user:password
        host, *host_params = hostpart.split(";")
        params.extend(host_params)
        host = host.split(":", 1)[0].strip().lower()
    context = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "phone-context":
            context = value.strip()
    if host == _ANONYMOUS_HOST:
        return WITHHELD_DISPLAY, None
    return fold_dial_text(unquote(number)).strip(), context


def _context_region(context: str | None) -> str | None:
    """The region of a ``phone-context=+CC...`` parameter, None for domain contexts."""
    if not context or context[0] != "+":
        return None
    digits = _SEPARATORS.sub("", context[1:])
    split = _split_country_code(digits) if digits.isdigit() else None
    if split is None:
        return None
    region = phonenumbers.region_code_for_country_code(split[0])
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


def _clean(text: str) -> str:
    if (text.startswith(("+", "00"))) and "(0)" in text:
        text = text.replace("(0)", "", 1)
    return _SEPARATORS.sub("", text)


def _strip_clir(text: str, region: str) -> str:
    for prefix in _CLIR_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :]
    if region in _CLIR_141_REGIONS and text.startswith("141") and len(text) > 3:
        return text[3:]
    return text


def _split_country_code(digits: str) -> tuple[int, str] | None:
    """(country code, rest) of international digits without their prefix; None if no code."""
    for length in (1, 2, 3):
        head = digits[:length]
        if len(head) == length and head[0] != "0":
            code = int(head)
            if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                return code, digits[length:]
    return None


@lru_cache(maxsize=512)
def _international_prefix(region: str) -> re.Pattern[str] | None:
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or not metadata.international_prefix:
        return None
    return re.compile(metadata.international_prefix)


def _strip_international_prefix(digits: str, region: str) -> str | None:
    """The digits after the region's international prefix (``00``, ``011``...), None if absent."""
    pattern = _international_prefix(region)
    m = pattern.match(digits) if pattern is not None else None
    if m is None or m.end() == 0 or m.end() >= len(digits):
        return None
    return digits[m.end() :]


def _service_class(digits: str, region: str) -> tuple[NumberClass, str | None] | None:
    """("social_value", e164) or ("emergency", None) for a national or international-prefixed
    digit string, None for anything else."""
    if is_social_value(digits):
        code = phonenumbers.country_code_for_region(region)
        return "social_value", (f"+{code}{digits}" if code else None)
    if is_emergency(digits, region):
        return "emergency", None
    international = _strip_international_prefix(digits, region)
    return _international_service_class(international) if international else None


def _international_service_class(digits: str) -> tuple[NumberClass, str | None] | None:
    split = _split_country_code(digits)
    if split is None:
        return None
    code, rest = split
    if is_social_value(rest):
        return "social_value", f"+{code}{rest}"
    if len(rest) <= 6:
        for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]:
            if is_emergency(rest, region):
                return "emergency", None
    return None


def _parse(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def _valid_as_dialled(digits: str, region: str) -> bool:
    """True when ``digits`` is a valid number dialled exactly like this in ``region``."""
    number = _parse(digits, region)
    if number is None or not phonenumbers.is_valid_number(number):
        return False
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    return "".join(ch for ch in national if ch.isdigit()) == digits


@lru_cache(maxsize=NUMBER_CACHE_SIZE)
def normalize_number(raw: str, region: str, outside_line: str = "") -> NormalizedNumber:
    """Classify and normalize one A/B number as the PBX wrote it (module docstring). Never
    raises: an unexpected failure gives class ``invalid``."""
    region = region.strip().upper() if isinstance(region, str) else ""
    try:
        return _normalize(raw, region, outside_line)
    except Exception:
        return NormalizedNumber(str(raw), region, None, "invalid", False)


_Classified = tuple[NumberClass, str | None, bool]  # (class, e164, valid)
_INVALID: _Classified = ("invalid", None, False)


def _normalize(raw: str, region: str, outside_line: str) -> NormalizedNumber:
    dial, context = _dial_string(fold_dial_text(raw))
    if is_withheld_text(dial):
        return NormalizedNumber(raw, region, None, "withheld", True)
    parse_region = _context_region(context) or region
    number_class, e164, valid = _classify(dial, parse_region, outside_line.strip())
    return NormalizedNumber(raw, region, e164, number_class, valid)


def _classify(
    dial: str, region: str, outside_line: str, *, extension_suffix_allowed: bool = True
) -> _Classified:
    """Steps 3-9 of the module docstring on an unwrapped, folded dial string."""
    text = _strip_clir(_clean(dial), region)
    if not _DIALABLE.fullmatch(text):
        if ("*" in text or "#" in text) and _FEATURE_CODE.fullmatch(text):
            return "extension", None, True
        if extension_suffix_allowed:
            return _classify_main_number(dial, region, outside_line)
        return _INVALID
    plus = text[0] == "+"
    digits = text[1:] if plus else text
    if not digits or len(digits) > 20:
        return _INVALID

    after_outside = (
        digits[len(outside_line) :]
        if outside_line
        and not plus
        and digits.startswith(outside_line)
        and len(digits) > len(outside_line)
        else None
    )
    if plus:
        service = _international_service_class(digits)
    else:
        service = _service_class(digits, region)
        if service is None and after_outside is not None:
            service = _service_class(after_outside, region)
    if service is not None:
        return service[0], service[1], True
    if (
        not plus
        and not outside_line
        and len(digits) >= 3
        and digits[0] in "09"
        and is_emergency(digits[1:], region)
        and not _valid_as_dialled(digits, region)
    ):
        return "emergency", None, True

    if (
        not plus
        and len(digits) <= MAX_EXTENSION_DIGITS
        and digits[0] != "0"
        and not _valid_as_dialled(digits, region)
    ):
        return "extension", None, True

    candidates = ([after_outside] if after_outside is not None else []) + [text]
    possible: phonenumbers.PhoneNumber | None = None
    for candidate in candidates:
        number = _parse(candidate, region)
        if number is None:
            continue
        if phonenumbers.is_valid_number(number):
            return "pstn", phonenumbers.format_number(number, PhoneNumberFormat.E164), True
        if possible is None and phonenumbers.is_possible_number(number):
            possible = number
    if possible is not None:
        return "pstn", phonenumbers.format_number(possible, PhoneNumberFormat.E164), False
    return _INVALID


def _classify_main_number(dial: str, region: str, outside_line: str) -> _Classified:
    """A number with an extension suffix (``+31 20 123 4567 ext. 12``) is its main number when
    that is a valid PSTN number or an emergency or 116 number; otherwise invalid."""
    if len(dial) > _MAX_EXTENSION_INPUT:
        return _INVALID
    # a CLIR prefix first: libphonenumber does not see "#31#020 1234567" as a viable number
    extension, main = _maybe_strip_extension(_strip_clir(dial.strip(), region))
    if not extension:
        return _INVALID
    classified = _classify(main, region, outside_line, extension_suffix_allowed=False)
    number_class, _, valid = classified
    if number_class in ("emergency", "social_value") or (number_class == "pstn" and valid):
        return classified
    return _INVALID


def display_number(number: NormalizedNumber) -> str:
    """What a record shows: E.164, ``anonymous`` for withheld, otherwise the dialled text
    without its wrappers and separators (extensions, feature codes, emergency digits, the
    stripped raw text of an unparseable number)."""
    if number.e164 is not None:
        return number.e164
    if number.number_class == "withheld":
        return WITHHELD_DISPLAY
    return _plain_text(number.raw)


@lru_cache(maxsize=NUMBER_CACHE_SIZE)
def _plain_text(raw: str) -> str:
    dial, _ = _dial_string(fold_dial_text(raw))
    cleaned = _clean(dial)
    return cleaned if _FEATURE_CODE.fullmatch(cleaned) or _DIALABLE.fullmatch(cleaned) else dial


def normalize_query_number(text: str, region: str) -> str | None:
    """What a user typed into the ``number`` filter -> an E.164 number or E.164 prefix.

    ``"06-12345678"`` -> ``"+31612345678"``; ``"020 123"`` -> ``"+3120123"``; ``"+31 20"`` ->
    ``"+3120"``; ``"0031 20 1234567"`` -> ``"+31201234567"``; ``"3120"`` (own country code
    without plus) -> ``"+3120"``; other digits -> the region's country code + digits. None for
    text that cannot be (part of) a number: empty, letters, a lone prefix. Never raises.
    """
    try:
        return _query_number(text, region.strip().upper())
    except Exception:
        return None


def _query_number(text: str, region: str) -> str | None:
    if not isinstance(text, str) or not text.strip() or len(text) > 256:
        return None
    number = normalize_number(text, region)
    if number.number_class == "pstn" and number.valid:
        return number.e164
    dial, _ = _dial_string(fold_dial_text(text))
    cleaned = _clean(dial)
    if not _DIALABLE.fullmatch(cleaned):
        return None
    if cleaned[0] == "+":
        return cleaned if len(cleaned) > 1 else None
    international = _strip_international_prefix(cleaned, region)
    if international is not None:
        return "+" + international
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.country_code is None:
        return None
    code = str(metadata.country_code)
    prefix = metadata.national_prefix
    if prefix and cleaned.startswith(prefix):
        rest = cleaned[len(prefix) :]
        if rest.startswith(prefix):  # "00" typed, the number not yet: an international prefix
            return None
        return "+" + code + rest
    if cleaned.startswith(code):
        return "+" + cleaned
    return "+" + code + cleaned
