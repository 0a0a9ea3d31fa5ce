"""Masked numbers: what a token issued with ``--mask`` is shown of an A or B number.

Such a token belongs to a partner role that troubleshoots calls (which country, which
line roughly, when, how long) but may not learn whom a tenant's users called.
`mask_number` keeps a number's **country code** and at most its **last four digits**:

- E.164 with a country code phonenumbers knows: ``+<country code> ••• <last digits>``,
  e.g. ``+31201234567`` -> ``+31 ••• 4567``, ``+12125551234`` -> ``+1 ••• 1234``. At least
  :data:`HIDDEN_DIGITS_MIN` digits of the national number stay hidden, so a short number
  shows fewer digits (``+3224567890``, 8 national digits -> ``+32 ••• 890``) or none
  (``+2904567`` -> ``+290 •••``). The mask is the same three dots whatever the length, so
  it does not tell the length either.
- ``anonymous`` (a withheld caller) stays ``anonymous``: there is nothing to hide.
- Anything else (an extension such as ``201``, a feature code such as ``*97``, text the
  PBX sent that is not a number, ``+`` and digits without a known country code) is the
  placeholder ``•••`` alone: no character of it is shown, because such a string has no
  country code to keep and may be a whole number written in an odd way.

A PBX may also put a number into a field that is not one: an ``extension`` of
``+31612345678``, a ``disposition`` of ``0612345699``. `holds_number` is the rule for such
text: it holds a run of at least :data:`NUMBER_DIGITS_MIN` digits (any Unicode decimal
digits, invisible format characters ignored, up to two spaces, dashes, dots, brackets or
slashes between two digits, as numbers are written: ``06-1234 5678``). `mask_text` masks
such a text whole, as `mask_number` masks a number (``+31612345678`` -> ``+31 ••• 5678``,
anything else -> ``•••``), and leaves any other text (``201``, ``busy``) as it is. Seven
digits: the shortest subscriber numbers in use have them; extensions and feature codes have
fewer.

`is_country_code` is the rule of the ``number`` filter for such tokens: the filter may only
name what the mask shows anyway, a whole country code (``+31``). A longer prefix would
answer "is there a call to a number that starts like this?", and growing it digit by digit
would spell out the hidden digits.

Pure functions; no I/O.
"""

from __future__ import annotations

import re

import phonenumbers

from cdrstream.core.numbers import WITHHELD_DISPLAY
from cdrstream.core.text_folding import fold_dial_text

#: What stands for the hidden digits (three U+2022 BULLET).
MASK = "\u2022\u2022\u2022"
#: Most trailing digits a masked number shows.
SHOWN_DIGITS_MAX = 4
#: Fewest digits of the national number a masked number keeps hidden.
HIDDEN_DIGITS_MIN = 5
#: Fewest digits in a row (separators allowed) that make a text hold a number.
NUMBER_DIGITS_MIN = 7

_DIGIT_RUN = re.compile(rf"[0-9](?:[\s().\/-]{{0,2}}[0-9]){{{NUMBER_DIGITS_MIN - 1},}}")

_E164 = re.compile(r"\+([0-9]{1,20})", re.ASCII)
_COUNTRY_CODES = frozenset(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def is_country_code(prefix: str) -> bool:
    """Whether ``prefix`` is ``+`` and exactly one country code (``+1``, ``+31``, ``+358``)."""
    return prefix[:1] == "+" and prefix[1:] in _COUNTRY_CODES


def _split_country_code(digits: str) -> tuple[str, str] | None:
    """(country code, national digits); None when no country code starts ``digits``.

    Country codes are prefix-free (ITU-T E.164), so at most one length matches."""
    for length in (1, 2, 3):
        if len(digits) >= length and digits[:length] in _COUNTRY_CODES:
            return digits[:length], digits[length:]
    return None


def mask_number(number: str) -> str:
    """A served number (``source``/``destination`` of a record) as a masked token sees it."""
    if number == WITHHELD_DISPLAY:
        return number
    match = _E164.fullmatch(number)
    split = _split_country_code(match.group(1)) if match else None
    if split is None:
        return MASK
    country_code, national = split
    shown = min(SHOWN_DIGITS_MAX, max(0, len(national) - HIDDEN_DIGITS_MIN))
    tail = f" {national[-shown:]}" if shown else ""
    return f"+{country_code} {MASK}{tail}"


def holds_number(text: str) -> bool:
    """Whether ``text`` holds a run of :data:`NUMBER_DIGITS_MIN` digits (module docstring)."""
    return _DIGIT_RUN.search(fold_dial_text(text)) is not None


def mask_text(text: str) -> str:
    """Text a PBX put in a field that is not a number (``extension``, ``disposition``) as a
    masked token sees it: masked whole as a number when it holds one, else as it is."""
    return mask_number(text) if holds_number(text) else text
