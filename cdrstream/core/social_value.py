"""Harmonised services of social value (contract §3, rule 4): ``116`` + exactly three digits.

The 116 range is reserved EU-wide (Commission Decision 2007/116/EC and its amendments), so the
check is the same in every region: 116000 (missing children), 116006 (victims of crime), 116016,
116111 (child helpline), 116117 (non-emergency medical on-call), 116123 (emotional support), ...
A number counts when dialled nationally (``116123``), after a country code (``+32116000``,
``0049116117``) or behind a dialling prefix (``0116000``, ``141116000``): every candidate of
`cdrstream.core.dialled_digits` comes here as plain ASCII digits, however it was written.
"""

from __future__ import annotations


def is_social_value(digits: str) -> bool:
    """True for exactly ``116`` followed by three ASCII digits."""
    return len(digits) == 6 and digits.startswith("116") and digits.isascii() and digits.isdigit()
