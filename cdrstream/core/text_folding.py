"""Folding what a PBX wrote into the characters a dialler means, before any classification.

`fold_dial_text(text)` is pure, never raises and returns ASCII text unchanged (a pure-ASCII
string costs one `str.isascii` call). Other characters, one at a time:

- every Unicode decimal digit (category ``Nd``, 66 sets of ten in Unicode 14: fullwidth U+FF11,
  Arabic-Indic U+0661, Persian U+06F1, Devanagari U+0967, mathematical bold U+1D7CF, ...) -> its
  ASCII digit (`unicodedata.decimal`); libphonenumber reads these as digits too, so a number
  written in them is the same number;
- format characters (category ``Cf``: zero-width space U+200B and joiners, word joiner, soft
  hyphen, byte-order mark, the bidi marks, embeddings, overrides and isolates) -> removed: they
  are invisible, so ``1\\u200b12`` and ``\\u202d112`` *are* 112 to whoever reads them;
- dash punctuation (category ``Pd``: hyphen U+2010, en dash U+2013, fullwidth hyphen-minus
  U+FF0D, ...) and the minus sign U+2212 -> ``-``;
- a character whose NFKC compatibility form is one printable ASCII character other than a digit
  (fullwidth plus, brackets, solidus and full stop, fullwidth letters, no-break and ideographic
  spaces) -> that form;
- anything else stays as it is. Digits that are not decimal digits (superscript two U+00B2,
  circled one U+2460: category ``No``) stay too: neither libphonenumber nor a dial pad reads them
  as digits.

The result only ever feeds classification and display; a record keeps the raw text as received.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

_ASCII_DIGITS = "0123456789"
_MINUS_SIGN = "\u2212"


def fold_dial_text(text: str) -> str:
    """``text`` with Unicode digits as ASCII digits and format characters removed (module
    docstring). ASCII text is returned as it is."""
    if text.isascii():
        return text
    return "".join([_fold_char(ch) for ch in text])


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    if ch.isascii():
        return ch
    category = unicodedata.category(ch)
    if category == "Nd":
        return _ASCII_DIGITS[unicodedata.decimal(ch)]
    if category == "Cf":
        return ""
    if category == "Pd" or ch == _MINUS_SIGN:
        return "-"
    compatible = unicodedata.normalize("NFKC", ch)
    if (
        len(compatible) == 1
        and compatible.isascii()
        and compatible.isprintable()
        and not compatible.isdigit()
    ):
        return compatible
    return ch
