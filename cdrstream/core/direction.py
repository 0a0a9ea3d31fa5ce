"""Direction of a call: the PBX's word when it gives one, else derived from the numbers.

Words (any case, surrounding blanks ignored): ``inbound``/``in``/``incoming``,
``outbound``/``out``/``outgoing``, ``internal``/``local``. Any other word makes the event
invalid (``bad_direction``).

Derivation when the event has no direction (contract §2), from the number classes of
`cdrstream.core.numbers`:

- caller an extension, callee not -> ``outbound``; the reverse -> ``inbound``;
  both extensions -> ``internal``;
- neither an extension (PSTN to PSTN: a forwarded call's outgoing leg, or a call the PBX
  logged with the tenant's DID as caller or callee): ``inbound`` when the event says where
  the call was routed (``routed_to`` is only given for inbound calls), otherwise
  ``outbound``, the leg the tenant's trunk placed to the PSTN.

A withheld caller counts as "not an extension" (only the PSTN withholds a caller here).

The PBX's word is trusted, with one exception: when both numbers are extensions the call is
internal whatever the word says (contract §3 rule 2). Some PBXs label legs relative to the switch:
FreeSWITCH calls the A-leg of an extension-to-extension call ``inbound``. This exception is
applied by `cdrstream.core.outcome`.
"""

from __future__ import annotations

from typing import Literal

from cdrstream.core.numbers import NumberClass

DirectionWord = Literal["inbound", "outbound", "internal"]

DIRECTION_WORDS: dict[str, DirectionWord] = {
    "inbound": "inbound",
    "in": "inbound",
    "incoming": "inbound",
    "outbound": "outbound",
    "out": "outbound",
    "outgoing": "outbound",
    "internal": "internal",
    "local": "internal",
}


def parse_direction_word(word: str) -> DirectionWord | None:
    """The direction a PBX word means, None for a word that is not one of `DIRECTION_WORDS`."""
    return DIRECTION_WORDS.get(word.strip().lower())


def derive_direction(
    caller_class: NumberClass, callee_class: NumberClass, routed_to: str | None
) -> DirectionWord:
    """The direction of an event that did not say (module docstring)."""
    caller_ext = caller_class == "extension"
    callee_ext = callee_class == "extension"
    if caller_ext:
        return "internal" if callee_ext else "outbound"
    if callee_ext:
        return "inbound"
    return "inbound" if routed_to else "outbound"
