"""Folding what a PBX wrote into the characters a dialler means, before any rule reads it.

`fold_dial_text(text)` is pure, never raises and returns ASCII text unchanged (a pure-ASCII
string costs one `str.isascii` call). Other characters, one at a time:

- every Unicode decimal digit (category ``Nd``: fullwidth U+FF11, Arabic-Indic U+0661,
  Persian U+06F1, Devanagari U+0967, mathematical bold U+1D7CF, ...) -> its ASCII digit;
- every other character with a whole numeric value (categories ``No``, ``Nl``: superscript
  two U+00B2, subscript two U+2082, circled one U+2460 and twelve U+246B, dingbat negative
  circled one U+2776, Roman numerals one U+2160, small one U+2170, twelve U+216B, ...) -> that
  value in ASCII digits: whoever reads superscript 1, 1, 2 or Roman one, one, 2 reads 112;
- invisible characters -> removed: format characters (``Cf``: zero-width space and joiners,
  soft hyphen, BOM, bidi marks, embeddings, overrides, isolates), combining marks (``Mn``,
  ``Mc``, ``Me``: U+0301 acute, U+034F grapheme joiner, variation selectors U+FE0F, the
  keycap U+20E3 of ``1️⃣``) and the other default-ignorable code points of Unicode's
  DerivedCoreProperties (Hangul fillers U+115F, U+1160, U+3164, U+FFA0, U+2065, U+FFF0-FFF8,
  U+E0000-E0FFF);
- spaces of every kind (``Zs``, ``Zl``, ``Zp``, the braille blank U+2800) -> ``" "``; dash
  punctuation (``Pd``) and the minus sign U+2212 -> ``-``;
- anything else -> its NFKC compatibility form, folded the same way (fullwidth plus U+FF0B
  and commercial at U+FF20 -> ``+`` and ``@``, fullwidth letters -> ASCII letters);
- what is still not ASCII after that (letters of other scripts, symbols) stays: the number
  is then not dialable (`cdrstream.core.dialled_digits`).

The result only ever feeds classification and display; a record keeps the raw text as received.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

_ASCII_DIGITS = "0123456789"
_MINUS_SIGN = "\u2212"
_BRAILLE_BLANK = "\u2800"
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Mn", "Mc", "Me"})
_SPACE_CATEGORIES = frozenset({"Zs", "Zl", "Zp"})
# Default_Ignorable_Code_Point (DerivedCoreProperties.txt) outside Cf and Mn
_IGNORABLE_RANGES = (
    (0x115F, 0x1160),
    (0x2065, 0x2065),
    (0x3164, 0x3164),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0xE0000, 0xE0FFF),
)
_MAX_NUMERIC = 10**12  # the largest whole value a Unicode character has


def fold_dial_text(text: str) -> str:
    """``text`` with every digit in ASCII and every invisible character removed (module
    docstring). ASCII text is returned as it is."""
    if text.isascii():
        return text
    return "".join([_fold_char(ch) for ch in text])


@lru_cache(maxsize=4096)
def _fold_char(ch: str, compatible: bool = True) -> str:
    if ch.isascii():
        return ch
    category = unicodedata.category(ch)
    if category == "Nd":
        return _ASCII_DIGITS[unicodedata.decimal(ch)]
    if category in ("No", "Nl"):
        value = unicodedata.numeric(ch, -1.0)
        if 0 <= value <= _MAX_NUMERIC and value == int(value):
            return str(int(value))
    if category in _INVISIBLE_CATEGORIES or _ignorable(ord(ch)):
        return ""
    if category in _SPACE_CATEGORIES or ch == _BRAILLE_BLANK:
        return " "
    if category == "Pd" or ch == _MINUS_SIGN:
        return "-"
    if compatible:
        form = unicodedata.normalize("NFKC", ch)
        if form != ch:
            return "".join([_fold_char(part, False) for part in form])
    return ch


def _ignorable(code: int) -> bool:
    return any(low <= code <= high for low, high in _IGNORABLE_RANGES)
