"""Free-text markers PBXs, gateways and carriers write in a number field when the number is
withheld or unknown (contract §2, rule 7: such a side is shown as ``anonymous``).

A dial string (already unwrapped from ``sip:``/name-addr and folded by
`cdrstream.core.text_folding`) is a marker when its letters and digits, case-folded, equal those
of one entry below: ``Out-of-Area``, ``OUT OF AREA`` and ``out_of_area`` are the same marker,
``UNKNOWN NAME`` and ``Unknown Name`` too. Empty text is withheld as well (`is_withheld_text`);
a URI on host ``anonymous.invalid`` (RFC 3323 section 4.1.1.3) is recognised by
`cdrstream.core.numbers`.

Where each comes from (checked in the sources and manuals named; repositories as of 2026-08):

- FreeSWITCH (github.com/signalwire/freeswitch): ``0000000000`` is
  ``SWITCH_DEFAULT_CLID_NUMBER`` (``src/include/switch_types.h``) and ``outbound_caller_id`` in
  ``conf/vanilla/vars.xml``; 2600Hz Kazoo, built on FreeSWITCH, presents every call with privacy
  flags as name ``anonymous``, number ``0000000000`` (docs.2600hz.com, "Caller ID Privacy").
  ``UNKNOWN``/``unknown``/``Unknown`` is what mod_sofia (``sofia.c``) and ``switch_channel.c``
  put in an empty caller-id number; mod_voicemail defaults the caller to ``anonymous``;
  mod_cidlookup treats ``UNKNOWN`` and ``UNAVAILABLE`` as "no name".
- Asterisk (github.com/asterisk/asterisk): ``<unknown>`` is ``AST_CALLERID_UNKNOWN``
  (``main/callerid.c``, `ast_callerid_merge`); app_minivm names an unknown caller
  ``Unknown Caller``; the presentation names include ``unavailable``; for a restricted caller
  ``res/res_pjsip_session.c`` sends ``From: "Anonymous" <sip:anonymous@anonymous.invalid>``.
- Gateways: AudioCodes treats ``Private`` and ``Anonymous`` in the caller-id field as restricted
  and sends ``"anonymous" <anonymous@anonymous.invalid>`` (no ``sip:`` scheme); Avaya IP Office
  and Yealink send ``"Anonymous" <sip:anonymous@anonymous.invalid>``.
- Carriers: Twilio passes withheld callers on as the alpha strings ``ANONYMOUS``,
  ``RESTRICTED``, ... (changelog, 2022-11-16). Telcordia GR-30 caller-id displays as the
  handset manuals list them (AT&T, Motorola, Uniden): ``PRIVATE``, ``PRIVATE NUMBER``,
  ``PRIVATE CALLER``, ``PRIVATE NAME``, ``UNKNOWN NUMBER``, ``UNKNOWN NAME``, ``UNKNOWN CALLER``,
  ``OUT OF AREA``, ``UNAVAILABLE``, ``NO NUMBER``; ``PRIVATE`` or ``WITHHELD`` after ``*67`` or
  ``141`` (Wikipedia, "Caller ID", blocking).
  Handset call logs: ``No Caller ID`` (iOS), ``Private number`` (Android). ``Blocked`` and
  ``Anonymous Caller`` are the same display family, listed in the hardening issue; no
  primary source was found for them, and no real number reads like either.

Deliberately not markers: single letters. The Bellcore reason-for-absence codes ``P`` (private)
and ``O`` (out of area) exist only inside the on-hook FSK caller-id data; Asterisk turns them into
presentation flags with an *empty* number (``main/callerid.c``), which is withheld anyway. As
markers they would misclassify real input: the match is case-insensitive and Asterisk's special
extensions include ``o`` (operator), next to ``s``, ``i``, ``t``, ``h``, ``a``, ``e``. Nor are
digit strings that stand in for the words (Twilio translated the alpha strings into digits
until its 2022 change): they look like numbers, and libphonenumber judges them like any other.
"""

from __future__ import annotations

WITHHELD_MARKERS: frozenset[str] = frozenset(
    {
        "anonymous",
        "restricted",
        "unknown",
        "private",
        "withheld",
        "unavailable",
        # FreeSWITCH / Kazoo
        "0000000000",
        # Asterisk (``<unknown>`` compares as ``unknown``)
        "unknown caller",
        # caller-id displays and handset call logs
        "private number",
        "private caller",
        "private name",
        "unknown number",
        "unknown name",
        "out of area",
        "no number",
        "no caller id",
        "blocked",
        "anonymous caller",
    }
)


def _key(text: str) -> str:
    return "".join([ch for ch in text.casefold() if ch.isalnum()])


_MARKER_KEYS = frozenset(_key(marker) for marker in WITHHELD_MARKERS)
_LONGEST_KEY = max(len(key) for key in _MARKER_KEYS)


def is_withheld_text(text: str) -> bool:
    """True when the dial string says "no number": empty or blank, or one of the markers
    (module docstring), compared on letters and digits, case-insensitively."""
    if not text or text.isspace():
        return True
    if len(text) > 4 * _LONGEST_KEY:  # no marker is this long, even with separators
        return False
    key = _key(text)
    return bool(key) and key in _MARKER_KEYS
