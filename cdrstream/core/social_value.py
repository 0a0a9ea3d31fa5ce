"""Harmonised services of social value (contract §3, rule 4): ``116`` + exactly three digits.

The 116 range is reserved EU-wide (Commission Decision 2007/116/EC and its amendments), so the
check is the same in every region: 116000 (missing children), 116006 (victims of crime),
116016, 116111 (child helpline), 116117 (non-emergency medical on-call), 116123 (emotional
support), ... A number counts when dialled nationally (``116123``) or after a country code
(``+32116000``, ``0049116117``): `cdrstream.core.numbers` strips the international forms and
passes the national digits here, already folded to ASCII (`cdrstream.core.text_folding`), so a
116 number written in fullwidth or Arabic-Indic digits, or with zero-width characters inside,
arrives here as plain ``116xxx``.
"""

from __future__ import annotations


def is_social_value(digits: str) -> bool:
    """True for exactly ``116`` followed by three ASCII digits."""
    return len(digits) == 6 and digits.startswith("116") and digits.isascii() and digits.isdigit()
