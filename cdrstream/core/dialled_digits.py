"""The digits a switch would dial: from a number as a PBX saw it to the digit strings that the
emergency and 116 rules (contract §3, rules 3 and 4) decide on.

`dialled_digits(raw, region, outside_line)` is pure and never raises. Steps, in order:

1. Folding (`cdrstream.core.text_folding`): every Unicode digit to ASCII (other scripts,
   superscript, subscript, circled, Roman numerals), NFKC for the rest, invisible characters
   (format, combining, fillers) removed.
2. Wrappers: a name-addr (``"Reception" <sip:...>``) keeps what is inside ``<>``; a URI scheme
   (``sip:``, ``sips:``, ``tel:``, ``callto:``, ``h323:``) goes; of what is left the user part
   stays (percent-decoded and folded again), without password, host (``112@carrier.example``)
   or parameters (``112;phone-context=+31``, ``;isub=1``, ``;postd=1``, ``;ext=12``), with
   or without a scheme. ``phone-context=+CC`` makes CC's region the dialling region.
3. Visual separators go (spaces, ``-``, ``.``, ``/``, brackets, tildes, the swung dash and the
   katakana long mark: libphonenumber's own punctuation); ``(0)`` after an international
   prefix goes (``+31 (0)20 ...``).
4. The number: after a star or hash presentation code (``*31#``, ``#31#``, ``*67``, ``*82``), a
   ``+`` and digits. Post-dial (``p``, ``w``, ``P``, ``W``, ``,``, ``;``, ``#`` after the digits:
   pauses, waits and DTMF sent once the call is up) is cut off: ``112w1``, ``112,,1``,
   ``112#,1`` dial 112. Short strings of digits, ``*`` and ``#`` that start with ``*`` or ``#``
   are PBX feature codes (``*97``, ``*72#201``). Anything else after the digits (``x``,
   ``(alarm)``, letters, symbols) is the ``tail``: the number is then not dialable as written
   (`cdrstream.core.numbers` accepts an extension suffix libphonenumber recognises).
5. Routes: the number as dialled, and after each dialling prefix it starts with, each kind at
   most once and in any order: the tenant's outside line (when none is configured, ``0`` and
   ``9`` are tried), the region's digit presentation codes (`PRESENTATION_CODES`) and
   carrier-select prefixes (`CARRIER_SELECT`).
6. Candidates, per route: its digits as a national number of the dialling region; after a
   ``+``, the region's international prefix or ``00``: the number after the country code, and
   after that country's trunk prefix as well (``+310112``, ``+31-0-112``, ``+11911``), judged
   in the country's regions; and after a stray ``+`` the digits as a national number (``+112``).
   Only candidates of at most `MAX_SERVICE_DIGITS` digits are made: longer ones are subscriber
   numbers, which libphonenumber judges.

A candidate reached through a guessed outside line, a digit presentation code or a carrier
prefix is ``guarded``: it counts only when the whole number is not a valid number as dialled
(`cdrstream.core.numbers` checks that), so a subscriber number that merely starts with such
digits stays what it is.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import unquote

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata

from cdrstream.core.text_folding import fold_dial_text

ANONYMOUS_TEXT = "anonymous"
_ANONYMOUS_HOST = "anonymous.invalid"

# Digit codes dialled before a number to withhold or present the caller's number.
# GB, IE: 141 withholds (Ofcom, ComReg), GB 1470 presents (BT); AU: 1831 withholds, 1832
# presents (ACMA); NZ: 0197 withholds (Spark); JP: 184 withholds, 186 presents (NTT); FR: 3651
# withholds on fixed lines (Orange); ES: 067 withholds on fixed lines (Movistar); NANP: 1167 and
# 1182, the rotary forms of *67 and *82 (NANPA vertical service codes).
PRESENTATION_CODES: dict[str, tuple[str, ...]] = {
    "GB": ("141", "1470"),
    "IE": ("141",),
    "AU": ("1831", "1832"),
    "NZ": ("0197",),
    "JP": ("184", "186"),
    "FR": ("3651",),
    "ES": ("067",),
    **{region: ("1167", "1182") for region in ("US", "CA")},
}
# Star and hash presentation codes, in every region: GSM's *31# and #31# (3GPP TS 22.030),
# NANP's *67 and *82.
_STAR_CODE = re.compile(r"(?:[*#]31#|\*67|\*82)")

# Carrier-select (call-by-call) prefixes dialled before a national or international number.
# DE 010xy and 0100xy (BNetzA); AT 10xy (RTR); CH 10xyz (BAKOM); NL 16xy (ACM); BE 16xy (BIPT);
# FR 16xy (ARCEP); IT 10xy and 10xyz (AGCOM); ES 10xy (CNMC); PL 10xy (UKE); NANP 101xxxx
# (carrier identification codes, NANPA).
CARRIER_SELECT: dict[str, re.Pattern[str]] = {
    "DE": re.compile(r"010[1-9][0-9]|0100[0-9]{2}"),
    "AT": re.compile(r"10[0-9]{2}"),
    "CH": re.compile(r"10[0-9]{3}"),
    "NL": re.compile(r"16[0-9]{2}"),
    "BE": re.compile(r"16[0-9]{2}"),
    "FR": re.compile(r"16[0-9]{2}"),
    "IT": re.compile(r"10[0-9]{2,3}"),
    "ES": re.compile(r"10[0-9]{2}"),
    "PL": re.compile(r"10[0-9]{2}"),
    **{region: re.compile(r"101[0-9]{4}") for region in ("US", "CA")},
}
_GUESSED_OUTSIDE_LINES = ("0", "9")

_NAME_ADDR = re.compile(r'\s*(?:"(?:[^"\\]|\\.)*"|[^"<]*)\s*<([^<>]*)>\s*(?:;.*)?', re.S)
_SCHEME = re.compile(r"(sips?|tel|callto|h323):", re.I)
_SEPARATORS = re.compile(r"[\s\-./()\[\]~\u2053\u223c\u30fc]+")
_ZERO_IN_BRACKETS = "(0)"
_NUMBER = re.compile(r"\+?[0-9]+")
_FEATURE_CODE = re.compile(r"[*#][0-9*#]{0,9}")
_POST_DIAL = frozenset("pPwW,;#")


_Step = tuple[str, str]  # (kind of prefix, its digits)
#: Candidates longer than this are not made: no emergency number libphonenumber or the
#: supplement knows is longer, nor is ``116xxx``; longer digits are subscriber numbers.
MAX_SERVICE_DIGITS = 6


class Candidate(NamedTuple):
    """Digits a switch would route: national digits of ``country_code`` (None: of the dialling
    region). ``steps`` are the prefixes removed to reach them (`via` says it in words),
    ``guarded`` whether they count only when the whole number is not a valid number as dialled
    (module docstring)."""

    digits: str
    country_code: int | None
    steps: tuple[_Step, ...]
    guarded: bool

    @property
    def via(self) -> str:
        """``as dialled`` or ``after outside line 0, country code +31, ...``."""
        if not self.steps:
            return "as dialled"
        return "after " + ", ".join(f"{kind} {digits}" for kind, digits in self.steps)


class Dialled(NamedTuple):
    """What a switch would make of one number (module docstring).

    ``text``: folded, without wrappers (``anonymous`` for a URI on ``anonymous.invalid``);
    ``cleaned``: ``text`` without visual separators; ``presentation``: the star or hash code
    before the number, or empty; ``number``: ``+digits`` or digits, the feature code, or empty;
    ``tail``: what follows the number when it is not post-dial; ``post_dial``: what follows
    it when it is;
    ``region``: the dialling region; ``routes``: (steps, number after those dialling prefixes);
    ``candidates``: for the emergency and 116 rules."""

    text: str
    cleaned: str
    presentation: str
    number: str
    tail: str
    post_dial: str
    feature_code: bool
    region: str
    routes: tuple[tuple[tuple[_Step, ...], str], ...]
    candidates: tuple[Candidate, ...]


def dialled_digits(raw: str, region: str, outside_line: str = "") -> Dialled:
    """The digits a switch would dial for ``raw`` in ``region`` (module docstring)."""
    text, context = dial_text(raw)
    region = _context_region(context, region)
    cleaned = clean(text)
    star = _STAR_CODE.match(cleaned)
    presentation = star.group() if star is not None else ""
    rest = cleaned[len(presentation) :]
    m = _NUMBER.match(rest)
    if m is None:
        if _FEATURE_CODE.fullmatch(rest):
            return Dialled(text, cleaned, presentation, rest, "", "", True, region, (), ())
        return Dialled(text, cleaned, presentation, "", rest, "", False, region, (), ())
    number, tail, post_dial = m.group(), rest[m.end() :], ""
    if tail and tail[0] in _POST_DIAL:
        tail, post_dial = "", tail
    routes = _routes(number, region, outside_line)
    candidates = tuple(candidate for route in routes for candidate in _candidates(route, region))
    return Dialled(
        text,
        cleaned,
        presentation,
        number,
        tail,
        post_dial,
        False,
        region,
        tuple((steps, dial) for steps, dial, _ in routes),
        candidates,
    )


def clean(text: str) -> str:
    """``text`` without visual separators, and without ``(0)`` after an international prefix."""
    if text.startswith(("+", "00")) and _ZERO_IN_BRACKETS in text:
        text = text.replace(_ZERO_IN_BRACKETS, "", 1)
    return _SEPARATORS.sub("", text)


# --- wrappers ---------------------------------------------------------------------------------


def dial_text(raw: str) -> tuple[str, str | None]:
    """(``raw`` folded, the user part inside name-addr, URI scheme, host and parameters; the
    phone-context parameter or None). ``anonymous`` for a URI on host ``anonymous.invalid``."""
    text = fold_dial_text(raw).strip()
    m = _NAME_ADDR.fullmatch(text)
    if m is not None:
        text = m.group(1).strip()
    elif len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1].strip()
    scheme = _SCHEME.match(text)
    if scheme is not None:
        text = text[scheme.end() :]
    user, at, host = text.partition("@")
    number, *params = user.split(";")
    if at:
        host, *host_params = host.split(";")
        params.extend(host_params)
        if scheme is not None:
            number = number.split(":", 1)[0]  # sip:user:password@host
        if host.split(":", 1)[0].strip().lower() == _ANONYMOUS_HOST:
            return ANONYMOUS_TEXT, None
    context = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "phone-context":
            context = value.strip()
    if (scheme is not None or at) and "%" in number:
        number = fold_dial_text(unquote(number))
    return number.strip(), context


def _context_region(context: str | None, region: str) -> str:
    """The dialling region: ``region``, unless a ``phone-context=+CC...`` parameter names another
    country code (then CC's main region; ``region`` when it shares CC, as AG shares +1 with US).
    Domain contexts change nothing."""
    if not context or context[0] != "+":
        return region
    digits = _SEPARATORS.sub("", context[1:])
    split = split_country_code(digits) if digits.isdigit() else None
    if split is None or split[0] == phonenumbers.country_code_for_region(region):
        return region
    context_region = phonenumbers.region_code_for_country_code(split[0])
    return context_region if context_region in phonenumbers.SUPPORTED_REGIONS else region


# --- routes and candidates --------------------------------------------------------------------

_Route = tuple[tuple[_Step, ...], str, bool]  # (steps, number after them, guarded)
OUTSIDE_LINE, GUESSED_OUTSIDE_LINE = "outside line", "guessed outside line"
_PRESENTATION, _CARRIER = "presentation code", "carrier prefix"


def _routes(number: str, region: str, outside_line: str) -> list[_Route]:
    routes: list[_Route] = [((), number, False)]
    if number[0] != "+":
        _strip_prefixes(number, region, outside_line, (), routes)
    return routes


def _strip_prefixes(
    digits: str, region: str, outside_line: str, steps: tuple[_Step, ...], out: list[_Route]
) -> None:
    done = {kind for kind, _ in steps}
    for kind, prefix in _prefixes(digits, region, outside_line):
        if kind in done or len(prefix) >= len(digits):
            continue
        route_steps = (*steps, (kind, prefix))
        rest = digits[len(prefix) :]
        guarded = any(step_kind != OUTSIDE_LINE for step_kind, _ in route_steps)
        out.append((route_steps, rest, guarded))
        _strip_prefixes(rest, region, outside_line, route_steps, out)


def _prefixes(digits: str, region: str, outside_line: str) -> list[_Step]:
    found: list[_Step] = []
    if outside_line:
        if digits.startswith(outside_line):
            found.append((OUTSIDE_LINE, outside_line))
    elif digits[0] in _GUESSED_OUTSIDE_LINES:
        found.append((GUESSED_OUTSIDE_LINE, digits[0]))
    for code in PRESENTATION_CODES.get(region, ()):
        if digits.startswith(code):
            found.append((_PRESENTATION, code))
    carrier = CARRIER_SELECT.get(region)
    if carrier is not None and carrier.match(digits) is not None:
        # every length the pattern takes in full (10xy and 10xyz in IT)
        for end in range(2, min(len(digits), 8)):
            if carrier.fullmatch(digits, 0, end):
                found.append((_CARRIER, digits[:end]))
    return found


def _candidates(route: _Route, region: str) -> list[Candidate]:
    steps, dial, guarded = route
    out: list[Candidate] = []
    if dial[0] == "+":
        digits = dial[1:]
        _international(digits, (*steps, ("international prefix", "+")), guarded, out)
        if len(digits) <= MAX_SERVICE_DIGITS:
            out.append(Candidate(digits, None, (*steps, ("stray", "+")), guarded))
        return out
    if len(dial) <= MAX_SERVICE_DIGITS:
        out.append(Candidate(dial, None, steps, guarded))
    for prefix in _international_prefixes(dial, region):
        steps_out = (*steps, ("international prefix", prefix))
        _international(dial[len(prefix) :], steps_out, guarded, out)
    return out


def _international(
    digits: str, steps: tuple[_Step, ...], guarded: bool, out: list[Candidate]
) -> None:
    split = split_country_code(digits)
    if split is None:
        return
    code, rest = split
    if not rest or len(rest) > MAX_SERVICE_DIGITS + 2:  # the longest trunk prefix: HU 06
        return
    steps = (*steps, ("country code", str(code)))
    if len(rest) <= MAX_SERVICE_DIGITS:
        out.append(Candidate(rest, code, steps, guarded))
    trunk = _trunk_prefix(code)
    if trunk and rest.startswith(trunk) and 0 < len(rest) - len(trunk) <= MAX_SERVICE_DIGITS:
        trunk_steps = (*steps, ("trunk prefix", trunk))
        out.append(Candidate(rest[len(trunk) :], code, trunk_steps, guarded))


def _international_prefixes(digits: str, region: str) -> list[str]:
    found = ["00"] if digits.startswith("00") else []
    pattern = _international_prefix(region)
    m = pattern.match(digits) if pattern is not None else None
    if m is not None and 0 < m.end() < len(digits) and m.group() not in found:
        found.append(m.group())
    return [prefix for prefix in found if len(prefix) < len(digits)]


# --- numbering data ---------------------------------------------------------------------------


def split_country_code(digits: str) -> tuple[int, str] | None:
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


def strip_international_prefix(digits: str, region: str) -> str | None:
    """The digits after the region's international prefix (``00``, ``011``...), None if absent."""
    pattern = _international_prefix(region)
    m = pattern.match(digits) if pattern is not None else None
    if m is None or m.end() == 0 or m.end() >= len(digits):
        return None
    return digits[m.end() :]


@lru_cache(maxsize=512)
def _trunk_prefix(code: int) -> str:
    """The national (trunk) prefix of country ``code``'s main region: ``0``, ``1`` (NANP),
    ``8`` (RU), ``06`` (HU); empty where there is none."""
    region = phonenumbers.region_code_for_country_code(code)
    metadata = PhoneMetadata.metadata_for_region(region)
    return (metadata.national_prefix or "") if metadata is not None else ""
