"""A and B numbers: from whatever the PBX wrote to E.164 and a class (contract §2, rule 7).

`normalize_number(raw, region, outside_line)` never raises and is cached (keyed on the raw
text). `cdrstream.core.dialled_digits` first computes what a switch would dial (folding,
wrappers, separators, post-dial, dialling prefixes, candidates); then, in order:

1. Withheld: the free-text markers PBXs and carriers write (`cdrstream.core.withheld`:
   ``anonymous``, ``Unknown``, ``<unknown>``, ``PRIVATE``, ``OUT OF AREA``, ``0000000000``,
   ... in any case and spacing), empty, or any URI or ``user@host`` on host
   ``anonymous.invalid`` -> ``withheld`` (shown as ``anonymous``).
2. Services, on every candidate of `dialled_digits`, first match wins: ``116`` + three digits
   -> ``social_value`` (E.164 with the candidate's country code, else the region's); an exact
   emergency number of the candidate's region(s) (`cdrstream.core.emergency`) ->
   ``emergency``. A guarded candidate (reached through a guessed outside line ``0``/``9``, a
   digit presentation code or a carrier prefix) counts only when the whole number is not a
   valid number as dialled (``0112`` in NL, ``9911`` in US, ``141999`` in GB are hidden; a
   subscriber number starting with those digits is not). ``hidden_by`` names the rule, the
   candidate and how it was reached.
3. PBX feature codes (``*97``, ``*72#201``) -> ``extension``.
4. Text after the number (letters, symbols, or post-dial such as ``#12``): an extension
   suffix in any form libphonenumber recognises (``ext. 12``, ``x12``, ``#12``, ``- 22#``,
   ``доб 12``, ...; found by libphonenumber's own extension stripper) makes the text before it
   the number, when that is a valid PSTN number (``pstn``, E.164 of the main number). Other
   post-dial is ignored; any other text (``0800-FLOWERS``, ``sip:alice@example.com``,
   ``201 x5``) -> ``invalid`` and not ``dialable``: `cdrstream.core.outcome` never shows a
   call to it.
5. Extensions: 1-6 digits, no ``+``, not starting with ``0``, that are not a valid number *as
   dialled* in the region (``14020`` in NL is a valid PSTN number dialled like that; ``30123``
   in DE is only valid as ``030 123``, so it is an extension) -> ``extension``.
6. PSTN, with `phonenumbers`: the number after the configured outside line first (when
   present), then as dialled, then after a presentation code or carrier prefix. The first
   *valid* parse wins -> ``pstn``. ``phonenumbers`` itself handles national
   (``020 1234567``), international-prefix (``0031...``) and own-country-code-without-plus
   (``31201234567``) forms.
7. Possible but not valid (right length, unassigned range) -> ``pstn`` with ``valid=False``,
   E.164 kept. Otherwise (no digits, more than 20) -> ``invalid``.

Which side gets the outside line is decided by `cdrstream.core.outcome` (the dialled side only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import phonenumbers
from phonenumbers import PhoneNumberFormat
from phonenumbers.phonemetadata import PhoneMetadata

# libphonenumber's maybeStripExtension, the very function `phonenumbers.parse` uses: the public
# API returns the extension's digits but not where the main number ends. Typed in phonenumbers'
# own stubs; the extension tests fail loudly should it ever move.
from phonenumbers.phonenumberutil import _maybe_strip_extension

from cdrstream.core.dialled_digits import (
    GUESSED_OUTSIDE_LINE,
    OUTSIDE_LINE,
    Candidate,
    Dialled,
    clean,
    dial_text,
    dialled_digits,
    strip_international_prefix,
)
from cdrstream.core.emergency import is_emergency
from cdrstream.core.social_value import is_social_value
from cdrstream.core.withheld import WITHHELD_MARKERS as WITHHELD_MARKERS
from cdrstream.core.withheld import is_withheld_text

NumberClass = Literal["pstn", "emergency", "social_value", "withheld", "invalid", "extension"]

NUMBER_CACHE_SIZE = 65_536
MAX_EXTENSION_DIGITS = 6
WITHHELD_DISPLAY = "anonymous"

_MAX_NUMBER_DIGITS = 20
_MAX_EXTENSION_INPUT = 250  # libphonenumber's own limit on what it parses
_DIGITS = re.compile(r"\+?[0-9]+")
_PLAIN = re.compile(r"\+?[0-9]+|[0-9*#]{1,10}")


@dataclass(frozen=True, slots=True)
class NormalizedNumber:
    """One number as classified. ``e164`` is set for ``pstn`` (also when ``valid`` is False:
    possible-but-not-valid numbers keep their E.164 form) and for ``social_value``.
    ``hidden_by`` says, for ``emergency`` and ``social_value``, which rule matched on which
    candidate (``emergency 112 (NL), after guessed outside line 0``); ``dialable`` is False for
    text that still holds letters or symbols after the number (module docstring, step 4)."""

    raw: str
    region: str
    e164: str | None
    number_class: NumberClass
    valid: bool
    hidden_by: str | None = None
    dialable: bool = True


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


# (class, e164, valid, hidden_by, dialable): the fields a classification fills in
_Classified = tuple[NumberClass, str | None, bool, str | None, bool]
_INVALID: _Classified = ("invalid", None, False, None, True)
_UNDIALABLE: _Classified = ("invalid", None, False, None, False)
_EXTENSION: _Classified = ("extension", None, True, None, True)


def _normalize(raw: str, region: str, outside_line: str) -> NormalizedNumber:
    dialled = dialled_digits(raw, region, outside_line.strip())
    if is_withheld_text(dialled.text):
        return NormalizedNumber(raw, region, None, "withheld", True)
    classified = _classify(dialled, outside_line.strip(), suffix_allowed=True)
    number_class, e164, valid, hidden_by, dialable = classified
    return NormalizedNumber(raw, region, e164, number_class, valid, hidden_by, dialable)


def _classify(dialled: Dialled, outside_line: str, *, suffix_allowed: bool) -> _Classified:
    """Steps 2-7 of the module docstring."""
    service = _service(dialled)
    if service is not None:
        return service
    if dialled.feature_code:
        return _EXTENSION
    number = dialled.number
    if not number:
        return _UNDIALABLE
    if dialled.tail or dialled.post_dial:
        main = _main_number(dialled, outside_line) if suffix_allowed else None
        if main is not None:
            return main
        if dialled.tail:
            return _UNDIALABLE
    plus = number[0] == "+"
    digits = number[1:] if plus else number
    region = dialled.region
    if not digits or len(digits) > _MAX_NUMBER_DIGITS:
        return _INVALID
    if (
        not plus
        and len(digits) <= MAX_EXTENSION_DIGITS
        and digits[0] != "0"
        and not _valid_as_dialled(digits, region)
    ):
        return _EXTENSION
    possible: phonenumbers.PhoneNumber | None = None
    for candidate in _pstn_strings(dialled):
        parsed = _parse(candidate, region)
        if parsed is None:
            continue
        if phonenumbers.is_valid_number(parsed):
            e164 = phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
            return "pstn", e164, True, None, True
        if possible is None and phonenumbers.is_possible_number(parsed):
            possible = parsed
    if possible is not None:
        e164 = phonenumbers.format_number(possible, PhoneNumberFormat.E164)
        return "pstn", e164, False, None, True
    return _INVALID


def _pstn_strings(dialled: Dialled) -> list[str]:
    """What libphonenumber parses, in order: after the configured outside line, as dialled
    (``(0)`` after an international prefix removed), after presentation codes or carrier
    prefixes; never after a guessed outside line."""
    first: list[str] = []
    later: list[str] = []
    for steps, number in dialled.routes:
        if not steps:
            continue
        if all(kind == OUTSIDE_LINE for kind, _ in steps):
            first.append(number)
        elif not any(kind == GUESSED_OUTSIDE_LINE for kind, _ in steps):
            later.append(number)
    return [*first, dialled.number, *later]


def _service(dialled: Dialled) -> _Classified | None:
    """``social_value`` or ``emergency`` when a candidate is one (module docstring, step 2)."""
    for candidate in dialled.candidates:
        digits = candidate.digits
        if is_social_value(digits):
            code = candidate.country_code or phonenumbers.country_code_for_region(dialled.region)
            found: tuple[NumberClass, str | None, str] = (
                "social_value",
                f"+{code}{digits}" if code else None,
                f"+{code}" if code else dialled.region,
            )
        else:
            region = _emergency_region(candidate, dialled.region)
            if region is None:
                continue
            found = ("emergency", None, region)
        if candidate.guarded and _valid_as_dialled(dialled.number, dialled.region):
            continue
        number_class, e164, where = found
        reason = f"{number_class} {digits} ({where}), {candidate.via}"
        return number_class, e164, True, reason, True
    return None


def _emergency_region(candidate: Candidate, region: str) -> str | None:
    """The region in which ``candidate`` is an emergency number, None if in none."""
    if candidate.country_code is None:
        return region if is_emergency(candidate.digits, region) else None
    for code_region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[candidate.country_code]:
        if is_emergency(candidate.digits, code_region):
            return code_region
    return None


def _main_number(dialled: Dialled, outside_line: str) -> _Classified | None:
    """The number before an extension suffix (``+31 20 123 4567 ext. 12``), when
    libphonenumber finds one and the number before it is a valid PSTN number."""
    text = dialled.text
    if len(text) > _MAX_EXTENSION_INPUT:
        return None
    if dialled.presentation and text.startswith(dialled.presentation):
        # libphonenumber does not see "#31#020 1234567" as a viable number
        text = text[len(dialled.presentation) :]
    extension, main = _maybe_strip_extension(text)
    if not extension:
        return None
    classified = _classify(
        dialled_digits(main, dialled.region, outside_line), outside_line, suffix_allowed=False
    )
    number_class, _, valid, _, _ = classified
    if number_class == "pstn" and valid:
        return classified
    return None


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
    text, _ = dial_text(raw)
    cleaned = clean(text)
    return cleaned if _PLAIN.fullmatch(cleaned) else text


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
    dial, _ = dial_text(text)
    cleaned = clean(dial)
    if not _DIGITS.fullmatch(cleaned):
        return None
    if cleaned[0] == "+":
        return cleaned if len(cleaned) > 1 else None
    international = strip_international_prefix(cleaned, region)
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
