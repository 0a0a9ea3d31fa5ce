"""Asterisk CDRs (``cdr_csv`` rows, ``cdr_manager`` AMI events) -> call-ended events (pure;
docs/adapters/asterisk.md).

What Asterisk writes (read in asterisk/asterisk, ``cdr/cdr_csv.c`` and ``cdr/cdr_manager.c``):

- ``Master.csv`` (``cdr_csv``): one line per CDR, strings in double quotes (``""`` inside),
  numbers bare, an unset time as an empty bare field: ``accountcode, src, dst, dcontext,
  clid, channel, dstchannel, lastapp, lastdata, start, answer, end, duration, billsec,
  disposition, amaflags``, then ``uniqueid`` when ``loguniqueid=yes``, ``userfield`` when
  ``loguserfield=yes``, and ``peeraccount, linkedid, sequence`` when ``newcdrcolumns=yes``
  (`CSV_LAYOUTS`: 16 to 21 columns; with 17 or 20 the extra column is read as ``uniqueid``,
  so enable ``loguniqueid`` whenever ``loguserfield`` is). Times are ``%Y-%m-%d %T`` without
  a zone: the PBX's local time, or UTC with ``usegmtime=yes``.
- ``Event: Cdr`` (``cdr_manager``): the same fields as headers ``AccountCode``, ``Source``,
  ``Destination``, ``DestinationContext``, ``CallerID``, ``Channel``, ``DestinationChannel``,
  ``LastApplication``, ``LastData``, ``StartTime``, ``AnswerTime`` (empty when unanswered),
  ``EndTime``, ``Duration``, ``BillableSeconds``, ``Disposition``, ``AMAFlags``,
  ``UniqueID``, ``UserField``, plus the ``[mappings]`` of ``cdr_manager.conf``
  (``LinkedID``, ``Sequence`` are read when mapped). Times are always local (no
  ``usegmtime`` there).

Zone-less times are read in the configured zone (`AsteriskConfig.zone`). In the hour a
clock falls back a local time names two instants; the one that agrees with ``duration``
(end - start) and ``billsec`` (end - answer) is taken.

**Chains and legs.** Since Asterisk 12 a channel's call is a chain of CDRs, one per Party B
it met (each phone a queue or a ``Dial(A&B)`` rang, each party of a transfer), all with
Party A's ``uniqueid``, dispatched together when Party A hangs up. A *PSTN leg* is a
channel on a trunk: Party A's channel when it is a trunk (the carrier called in:
``inbound``), else each Party B channel that is a trunk (the PBX called out:
``outbound``). A chain with no trunk channel (extension to extension) gives no event. Each
PSTN leg gives **one** event (`chain_events`), whatever the number of CDRs it spans:

- ``started_at`` the earliest start, ``ended_at`` the latest end, ``answered_at`` the earliest
  answer of an ``ANSWERED`` CDR, ``duration`` the sum of their ``billsec``;
- ``disposition``: ``ANSWERED`` if any CDR was, else the strongest of ``BUSY``,
  ``CONGESTION``, ``FAILED``, ``CANCEL``, ``NO ANSWER`` (so ringing a queue of five phones is
  one call, answered by one of them, not four missed calls and one answered);
- inbound: ``caller`` = ``src``, ``callee`` = ``dst`` of the first CDR when it is a number
  (the DID), else the tenant's first number in the tenants file, never a menu key (`1`);
  ``routed_to`` ``queue`` when it went through ``Queue``, else ``extension`` when a phone
  answered it, else ``forward`` when it went back out (`_routed_to`), else ``voicemail``,
  ``conference`` or ``ivr`` by the applications it ran;
  ``extension`` the endpoint of the last phone that answered (``PJSIP/201-0000002a`` ->
  ``201``) when it looks like one;
- outbound: ``caller`` = ``src`` (Party A's caller-id: the presented number when the
  dialplan set ``CALLERID(num)``, else the extension), ``callee`` = ``dst`` (the number the
  phone dialled), or, when Party A is a trunk too (a call forwarded back out), the number in
  the ``Dial`` argument; ``extension`` Party A's endpoint (or ``src``) when it looks like one.
  A trunk -> trunk CDR left by an attended transfer is no outbound leg (`_transfer_into`);
- ``tenant_id`` from `AsteriskConfig.tenant_sources` (`_tenant`; never a trunk channel's own
  ``accountcode``), else the default tenant; ``tenant_region`` the tenant's region;
- CDRs of dialled channels (``lastapp`` ``AppDial``) are not calls (`calling_rows`); an
  outbound leg starts when the phone dialled, through ``Local`` channels included;
- ``event_id`` ``ast:<uniqueid>:<trunk channel>``, ``call_id`` ``<uniqueid>:<trunk channel>``:
  the same rows read again, from the file or from AMI, are the same event.

A trunk is an endpoint named in `AsteriskConfig.trunks` (``provider`` or
``PJSIP/provider``); with none configured, any channel whose endpoint is not 1-6 digits and
not a ``Local`` channel counts as a trunk.
"""

from __future__ import annotations

import csv
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from cdrstream.ingest.pbx_tenants import PbxTenants
from cdrstream.ingest.results import Rejected, Result, checked, printable_id

#: Longest CSV line read, bytes (cdr_csv builds each line in a 1024-byte buffer).
MAX_LINE_BYTES = 8192

BASE_COLUMNS = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
)
_NEW = ("peeraccount", "linkedid", "sequence")
#: Column count -> column names, by cdr.conf's ``[csv]`` options.
CSV_LAYOUTS: dict[int, tuple[str, ...]] = {
    16: BASE_COLUMNS,
    17: (*BASE_COLUMNS, "uniqueid"),
    18: (*BASE_COLUMNS, "uniqueid", "userfield"),
    19: (*BASE_COLUMNS, *_NEW),
    20: (*BASE_COLUMNS, "uniqueid", *_NEW),
    21: (*BASE_COLUMNS, "uniqueid", "userfield", *_NEW),
}
#: AMI ``Event: Cdr`` header -> column name (cdr_manager.c ``manager_log``).
AMI_HEADERS: dict[str, str] = {
    "AccountCode": "accountcode",
    "Source": "src",
    "Destination": "dst",
    "DestinationContext": "dcontext",
    "CallerID": "clid",
    "Channel": "channel",
    "DestinationChannel": "dstchannel",
    "LastApplication": "lastapp",
    "LastData": "lastdata",
    "StartTime": "start",
    "AnswerTime": "answer",
    "EndTime": "end",
    "Duration": "duration",
    "BillableSeconds": "billsec",
    "Disposition": "disposition",
    "AMAFlags": "amaflags",
    "UniqueID": "uniqueid",
    "UserField": "userfield",
    "PeerAccount": "peeraccount",
    "LinkedID": "linkedid",
    "Sequence": "sequence",
}

_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
_SECONDS = re.compile(r"-?[0-9]{1,10}")
_EXTENSION = re.compile(r"[1-9][0-9]{0,5}")
_DIAL_NUMBER = re.compile(r"\+?[0-9*#]{1,32}")
#: A number a carrier delivers (a DID): 5 or more digits; shorter is a menu key or extension.
_DELIVERED_NUMBER = re.compile(r"\+?[0-9]{5,20}")
T = TypeVar("T")

#: Disposition words of ``ast_cdr_disp2str``, strongest first (after ANSWERED).
_DISPOSITION_STRENGTH = ("ANSWERED", "BUSY", "CONGESTION", "FAILED", "CANCEL", "NO ANSWER")
_DISPOSITIONS = {
    "ANSWERED": "answered",
    "BUSY": "busy",
    "CONGESTION": "failed",
    "FAILED": "failed",
    "CANCEL": "cancelled",
    "NO ANSWER": "no_answer",
}
_QUEUE_APPS = frozenset({"queue"})
_VOICEMAIL_APPS = frozenset({"voicemail", "voicemailmain"})
_CONFERENCE_APPS = frozenset({"confbridge", "meetme"})
_IVR_APPS = frozenset({"background", "read", "waitexten", "playback", "ivrdemo", "agi"})
#: ``lastapp`` of the CDR of a channel that Dial created: the dialled side of another
#: channel's call, already in that channel's chain.
_DIALLED_APPS = frozenset({"appdial", "appdial2"})
#: Where a leg's tenant may come from, in the order `AsteriskConfig.tenant_sources` lists them.
TENANT_SOURCES = ("map", "accountcode", "peeraccount", "userfield")

#: Event field -> the CDR column it is read from, for refusals.
_SOURCE_FIELDS: dict[str, str] = {
    "event_id": "uniqueid",
    "call_id": "uniqueid",
    "tenant_id": "accountcode",
    "started_at": "start",
    "answered_at": "answer",
    "ended_at": "end",
    "duration": "billsec",
    "caller": "src",
    "callee": "dst",
    "extension": "dstchannel",
    "direction": "channel",
}


@dataclass(frozen=True, slots=True)
class AsteriskConfig:
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    trunks: frozenset[str] = frozenset()
    default_tenant: str = ""
    #: `TENANT_SOURCES` tried in this order (``CDRSTREAM_ASTERISK_TENANT_SOURCES``).
    tenant_sources: tuple[str, ...] = ("map", "accountcode")
    tenants: PbxTenants = field(default_factory=PbxTenants)


@dataclass(frozen=True, slots=True)
class AsteriskCdr:
    """One CDR as Asterisk wrote it, times read into UTC epoch ms."""

    accountcode: str
    src: str
    dst: str
    dcontext: str
    clid: str
    channel: str
    dstchannel: str
    lastapp: str
    lastdata: str
    start_ms: int
    answer_ms: int | None
    end_ms: int
    duration: int
    billsec: int
    disposition: str
    amaflags: str
    uniqueid: str = ""
    userfield: str = ""
    peeraccount: str = ""
    linkedid: str = ""
    sequence: str = ""

    @property
    def chain_key(self) -> str:
        """The chain this CDR belongs to: Party A's uniqueid, else (``cdr_csv`` without
        ``loguniqueid``) Party A's channel name, which Asterisk numbers anew for each channel:
        the rows of one call's chain are consecutive and share it, whatever their start."""
        return self.uniqueid or self.channel

    @property
    def answered(self) -> bool:
        return self.disposition == "ANSWERED" and self.answer_ms is not None


# --- reading ----------------------------------------------------------------------------


def parse_csv_line(line: bytes | str, config: AsteriskConfig) -> AsteriskCdr | Rejected:
    """One ``Master.csv`` line (without its newline). Never raises."""
    if len(line) > MAX_LINE_BYTES:
        return Rejected("row", f"longer than {MAX_LINE_BYTES} bytes")
    if isinstance(line, bytes):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = line.decode("latin-1")  # Asterisk writes the bytes it was given
    else:
        text = line
    line = text.rstrip("\r\n")
    if "\n" in line or "\r" in line or "\x00" in line:
        return Rejected("row", "not one CSV line")
    try:
        rows = list(csv.reader([line], strict=True))
    except csv.Error:
        return Rejected("row", "not valid CSV")
    if len(rows) != 1:
        return Rejected("row", "empty")
    values = rows[0]
    layout = CSV_LAYOUTS.get(len(values))
    if layout is None:
        return Rejected("row", f"{len(values)} columns; cdr_csv writes 16 to 21")
    return _cdr(dict(zip(layout, values, strict=True)), config)


def parse_ami_event(headers: Mapping[str, str], config: AsteriskConfig) -> AsteriskCdr | Rejected:
    """The CDR of one ``Event: Cdr`` (headers as sent). Never raises."""
    values = {column: headers[name] for name, column in AMI_HEADERS.items() if name in headers}
    for column in BASE_COLUMNS:
        if column not in values:
            return Rejected(_ami_name(column), "missing")
    parsed = _cdr(values, config)
    if isinstance(parsed, Rejected) and parsed.field in values:
        return Rejected(_ami_name(parsed.field), parsed.reason)
    return parsed


def _ami_name(column: str) -> str:
    return next(name for name, col in AMI_HEADERS.items() if col == column)


def _local_instants(text: str, zone: ZoneInfo) -> tuple[int, ...] | None:
    """UTC ms of a zone-less local time: one instant, two in a fall-back hour."""
    match = _TIME.fullmatch(text)
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        naive = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    instants = []
    for fold in (0, 1):
        ms = int(naive.replace(tzinfo=zone, fold=fold).timestamp()) * 1000
        if ms not in instants:
            instants.append(ms)
    return tuple(instants)


def _closest(candidates: Sequence[tuple[int, ...]], target_s: int | None) -> tuple[int, ...]:
    """The combination of instants whose span (last - first, s) is closest to target."""
    combos: list[tuple[int, ...]] = [()]
    for options in candidates:
        combos = [(*combo, option) for combo in combos for option in options]
    if target_s is None or len(combos) == 1:
        return combos[0]
    return min(combos, key=lambda c: abs((c[-1] - c[0]) / 1000 - target_s))


def _cdr(values: Mapping[str, str], config: AsteriskConfig) -> AsteriskCdr | Rejected:
    numbers: dict[str, int] = {}
    for column in ("duration", "billsec"):
        seconds = values.get(column, "").strip()
        if _SECONDS.fullmatch(seconds) is None or int(seconds) < 0:
            return Rejected(column, "not a whole number of seconds")
        numbers[column] = int(seconds)
    parsed: dict[str, tuple[int, ...] | None] = {}
    for column in ("start", "answer", "end"):
        when = values.get(column, "").strip()
        if not when:
            if column != "answer":
                return Rejected(column, "missing")
            parsed[column] = None
            continue
        instants = _local_instants(when, config.zone)
        if instants is None:
            return Rejected(column, "not a time like 2026-11-25 09:14:03")
        parsed[column] = instants
    start_options, end_options = parsed["start"], parsed["end"]
    assert start_options is not None and end_options is not None
    start, end = _closest([start_options, end_options], numbers["duration"])
    answer_options = parsed["answer"]
    answer: int | None = None
    if answer_options is not None:
        answer = _closest([answer_options, (end,)], numbers["billsec"])[0]
    disposition = " ".join(values.get("disposition", "").upper().split())
    text: dict[str, str] = {name: values.get(name, "") for name in AMI_HEADERS.values()}
    return AsteriskCdr(
        accountcode=text["accountcode"].strip(),
        src=text["src"],
        dst=text["dst"],
        dcontext=text["dcontext"],
        clid=text["clid"],
        channel=text["channel"].strip(),
        dstchannel=text["dstchannel"].strip(),
        lastapp=text["lastapp"].strip(),
        lastdata=text["lastdata"],
        start_ms=start,
        answer_ms=answer,
        end_ms=end,
        duration=numbers["duration"],
        billsec=numbers["billsec"],
        disposition=disposition,
        amaflags=text["amaflags"].strip(),
        uniqueid=text["uniqueid"].strip(),
        userfield=text["userfield"],
        peeraccount=text["peeraccount"].strip(),
        linkedid=text["linkedid"].strip(),
        sequence=text["sequence"].strip(),
    )


# --- channels ---------------------------------------------------------------------------


def channel_parts(channel: str) -> tuple[str, str]:
    """``PJSIP/provider-0000001a`` -> (``PJSIP``, ``provider``); ``Local/201@ctx-0001;1`` ->
    (``Local``, ``201@ctx``); ``DAHDI/1-1`` -> (``DAHDI``, ``1``)."""
    tech, _, rest = channel.partition("/")
    rest = rest.split(";", 1)[0]
    endpoint = rest.rpartition("-")[0] if "-" in rest else rest
    return tech, endpoint


def is_trunk(channel: str, trunks: frozenset[str]) -> bool:
    """Whether ``channel`` is a PSTN trunk channel (module docstring)."""
    if not channel:
        return False
    tech, endpoint = channel_parts(channel)
    if trunks:
        return endpoint in trunks or f"{tech}/{endpoint}" in trunks
    if tech.lower() == "local" or not endpoint:
        return False
    return _EXTENSION.fullmatch(endpoint) is None


def _endpoint_extension(channel: str) -> str | None:
    _tech, endpoint = channel_parts(channel)
    endpoint = endpoint.split("@", 1)[0]
    return endpoint if _EXTENSION.fullmatch(endpoint) else None


def _dialled_number(lastdata: str) -> str | None:
    """The number in a ``Dial`` argument: ``PJSIP/0612345678@provider,30`` or
    ``SIP/provider/0612345678``."""
    target = lastdata.split(",", 1)[0].split("&", 1)[0]
    _, _, rest = target.partition("/")
    for part in (rest.split("@", 1)[0], rest.rpartition("/")[2]):
        if part.startswith("sip:"):
            part = part[4:].split("@", 1)[0]
        if _DIAL_NUMBER.fullmatch(part):
            return part
    return None


# --- chains -> events -------------------------------------------------------------------


def calling_rows(chain: Sequence[AsteriskCdr]) -> list[AsteriskCdr]:
    """The chain without the CDRs of channels that Dial created (``lastapp`` ``AppDial``):
    such a CDR is the dialled side of a call that the caller's chain already holds (an
    outbound trunk channel's own CDR), never a call of its own."""
    return [cdr for cdr in chain if cdr.lastapp.strip().lower() not in _DIALLED_APPS]


def pstn_legs(chain: Sequence[AsteriskCdr], trunks: frozenset[str]) -> dict[str, list[int]]:
    """Trunk channel -> indexes of the chain's CDRs on that PSTN leg."""
    legs: dict[str, list[int]] = {}
    for index, cdr in enumerate(chain):
        if is_trunk(cdr.channel, trunks):
            legs.setdefault(cdr.channel, []).append(index)
        if is_trunk(cdr.dstchannel, trunks) and not _transfer_into(cdr, trunks):
            legs.setdefault(cdr.dstchannel, []).append(index)  # also trunk -> trunk: a forward
    return legs


def _transfer_into(cdr: AsteriskCdr, trunks: frozenset[str]) -> bool:
    """A trunk -> trunk CDR that an attended transfer made: Party A (the carrier's caller)
    last dialled a phone or an extension (``Dial(PJSIP/201)``, ``Dial(Local/2998@ctx)``);
    that phone called out and joined the two. The outbound crossing is the phone's own call
    (its chain has the trunk as Party B); this CDR only adds talk time to the inbound call.
    A forward or a blind transfer dials the outside number from Party A itself (a trunk, or
    a ``Local`` channel to an outside number)."""
    if not is_trunk(cdr.channel, trunks) or cdr.lastapp.lower() != "dial":
        return False
    target = cdr.lastdata.split(",", 1)[0].split("&", 1)[0].strip()
    tech, _, rest = target.partition("/")
    if not rest or _outside(f"{target}-0", trunks):
        return False
    name = rest if tech.lower() == "local" else re.split(r"[@/]", rest, maxsplit=1)[0]
    return _EXTENSION.fullmatch(name.split("@", 1)[0]) is not None


def chain_events(chain: Sequence[AsteriskCdr], config: AsteriskConfig) -> list[Result]:
    """One result per PSTN leg of a chain of CDRs (module docstring); an empty list when
    the chain has no trunk channel (`skip_reason` says why). Never raises."""
    try:
        rows = calling_rows(chain)
        legs = pstn_legs(rows, config.trunks)
        return [_leg_event(rows, indexes, trunk, config) for trunk, indexes in legs.items()]
    except Exception as exc:  # pragma: no cover - a bug: a refusal, never a crash
        return [Rejected("row", f"could not be read ({type(exc).__name__})")]


def skip_reason(chain: Sequence[AsteriskCdr], config: AsteriskConfig) -> str:
    """Why a chain gives no event: ``dialled_leg`` (only CDRs of dialled channels: the call
    is in its caller's chain) or ``not_pstn_leg`` (no trunk channel: an internal call)."""
    if chain and not calling_rows(chain):
        return "dialled_leg"
    return "not_pstn_leg"


def _strongest(dispositions: Sequence[str]) -> str:
    for word in _DISPOSITION_STRENGTH:
        if word in dispositions:
            return word
    return dispositions[0] if dispositions else ""


def _outside(channel: str, trunks: frozenset[str]) -> bool:
    """A channel that leaves the PBX: a trunk, or a ``Local`` channel whose extension is an
    outside number (5 or more digits: ``Local/0612345678@out``), whose other half dials it."""
    if is_trunk(channel, trunks):
        return True
    tech, endpoint = channel_parts(channel)
    return tech.lower() == "local" and bool(_DELIVERED_NUMBER.fullmatch(endpoint.split("@")[0]))


def _phone(channel: str, trunks: frozenset[str]) -> bool:
    return bool(channel) and not _outside(channel, trunks)


def _transferred_out(row: AsteriskCdr) -> bool:
    """``Transfer()`` to an outside number: the PBX handed the call to the carrier (SIP
    REFER), which connects it; no trunk channel of this PBX carries that part."""
    if row.lastapp.lower() != "transfer":
        return False
    target = row.lastdata.split(",", 1)[0].strip()
    number = _dialled_number(target) or target
    return bool(_DELIVERED_NUMBER.fullmatch(number))


def _routed_to(rows: Sequence[AsteriskCdr], trunks: frozenset[str]) -> str | None:
    """Where an inbound call went. ``forward`` when no phone answered it and it went back
    out (to a trunk, a ``Local`` channel dialling an outside number, or ``Transfer()`` to
    one): an extension's forward to a mobile, a transfer outside before anyone answered."""
    apps = {row.lastapp.lower() for row in rows}
    if apps & _QUEUE_APPS:
        return "queue"
    if any(row.answered and _phone(row.dstchannel, trunks) for row in rows):
        return "extension"
    if any(_outside(row.dstchannel, trunks) or _transferred_out(row) for row in rows):
        return "forward"
    if apps & _VOICEMAIL_APPS:
        return "voicemail"
    if apps & _CONFERENCE_APPS:
        return "conference"
    if apps & _IVR_APPS:
        return "ivr"
    if any(row.dstchannel for row in rows):
        return "extension"
    return None


def _tenant(rows: Sequence[AsteriskCdr], trunk: str, inbound: bool, config: AsteriskConfig) -> str:
    """The leg's tenant from the first of `AsteriskConfig.tenant_sources` that names one, else
    the default tenant ("" when none). A trunk channel's own ``accountcode`` is never read:
    it names the carrier account, not a tenant."""
    trunks = config.trunks
    for source in config.tenant_sources:
        found: str | None = None
        if source == "map":
            tech, endpoint = channel_parts(trunk)
            found = config.tenants.by_trunk(endpoint, f"{tech}/{endpoint}")
            if found is None and inbound:
                found = config.tenants.by_number(rows[0].dst)
        elif source == "accountcode":
            found = next(
                (r.accountcode for r in rows if r.accountcode and not is_trunk(r.channel, trunks)),
                None,
            )
        elif source == "peeraccount":
            found = next(
                (
                    r.peeraccount
                    for r in rows
                    if r.peeraccount and r.dstchannel and not is_trunk(r.dstchannel, trunks)
                ),
                None,
            )
        elif source == "userfield":
            found = next((r.userfield.strip() for r in rows if r.userfield.strip()), None)
        if found:
            return found
    return config.default_tenant


def _leg_event(
    chain: list[AsteriskCdr], indexes: list[int], trunk: str, config: AsteriskConfig
) -> Result:
    rows = [chain[i] for i in indexes]
    first = rows[0]
    inbound = first.channel == trunk
    if not inbound:
        # The phone's dial towards the trunk through Local channels is part of this call:
        # it started when the phone dialled.
        rows = [
            r
            for r in chain[: indexes[0]]
            if r.dstchannel.lower().startswith("local/") and r.lastdata == first.lastdata
        ] + rows
    key = first.uniqueid or f"{first.channel}@{min(row.start_ms for row in rows) // 1000}"
    if not printable_id(key) or len(trunk) > 120 or not trunk.isprintable():
        return Rejected("uniqueid", "not 1-200 visible ASCII characters")
    leg_rows = [chain[i] for i in indexes]
    answered = [row for row in leg_rows if row.answered]
    tenant = _tenant(rows, trunk, inbound, config)
    if not tenant:
        sources = ", ".join(config.tenant_sources) or "none"
        return Rejected(
            "accountcode",
            f"no tenant from the tenant sources ({sources}): map the trunk or number in the "
            "tenants file, or set a default tenant",
        )
    event: dict[str, Any] = {
        "event_id": f"ast:{key}:{trunk}",
        "tenant_id": tenant,
        "call_id": f"{key}:{trunk}",
        "started_at": min(row.start_ms for row in rows),
        "ended_at": max(row.end_ms for row in rows),
        "caller": first.src,
        "direction": "inbound" if inbound else "outbound",
    }
    if answered:
        event["answered_at"] = min(row.answer_ms or row.start_ms for row in answered)
        event["duration"] = sum(row.billsec for row in answered)
        event["disposition"] = "answered"
    else:
        event["duration"] = 0
        word = _strongest([row.disposition for row in leg_rows])
        event["disposition"] = _DISPOSITIONS.get(word, word.lower())
    extension: str | None
    if inbound:
        callee = _inbound_callee(first, tenant, config)
        if callee is None:
            return Rejected(
                "dst",
                "not the number the caller dialled (a menu key or extension): list the "
                "tenant's numbers in the tenants file",
            )
        event["callee"] = callee
        routed_to = _routed_to(leg_rows, config.trunks)
        if routed_to:
            event["routed_to"] = routed_to
        phones = [
            row.dstchannel
            for row in (answered or leg_rows)
            if _phone(row.dstchannel, config.trunks)
        ]
        extension = _endpoint_extension(phones[-1]) if phones else None
    else:
        out = next(row for row in leg_rows if row.dstchannel == trunk)
        forwarded = is_trunk(out.channel, config.trunks)
        dialled = _dialled_number(out.lastdata) if out.lastapp.lower() == "dial" else None
        event["callee"] = (dialled or out.dst) if forwarded else out.dst
        extension = None if forwarded else _endpoint_extension(out.channel)
        extension = extension or (None if forwarded else _extension_like(out.src))
    if extension:
        event["extension"] = extension
    region = config.tenants.region(tenant)
    if region:
        event["tenant_region"] = region
    return checked(event, _SOURCE_FIELDS)


def _inbound_callee(first: AsteriskCdr, tenant: str, config: AsteriskConfig) -> str | None:
    """The number the PSTN caller dialled: ``dst`` of the trunk leg's first CDR when it is
    one (5 or more digits), else the tenant's first number in the tenants file; never a menu
    key or an extension (``1``, ``s``, ``2998``)."""
    dst = first.dst.strip()
    if _DELIVERED_NUMBER.fullmatch(dst):
        return dst
    return config.tenants.main_number(tenant)


class Chains(Generic[T]):
    """Groups CDRs, in the order they come, into chains: consecutive CDRs with the same
    `AsteriskCdr.chain_key` (Asterisk dispatches a chain in one go). No I/O: the shells
    decide when a chain is complete (the next chain starts, the input ends, or it has been
    quiet for a while).

    A chain taken as complete too early (its last CDRs arrived after a pause) is not lost:
    the last `RECENT` completed chains are remembered, and a CDR of one of them reopens it,
    so the chain is delivered again whole (the same event ids, now with every CDR: the
    store replaces the first record)."""

    RECENT = 1024

    def __init__(self) -> None:
        self._pending: list[tuple[AsteriskCdr, T]] = []
        self._recent: OrderedDict[str, list[tuple[AsteriskCdr, T]]] = OrderedDict()

    @property
    def pending(self) -> list[tuple[AsteriskCdr, T]]:
        return self._pending

    def add(self, cdr: AsteriskCdr, tag: T) -> list[tuple[AsteriskCdr, T]]:
        """Add one CDR (``tag``: whatever the shell needs back, e.g. the line and its
        offset); returns the chain it completed, if any (else an empty list)."""
        done: list[tuple[AsteriskCdr, T]] = []
        if self._pending and self._pending[0][0].chain_key != cdr.chain_key:
            done = self.take()
        if not self._pending:
            self._pending = self._recent.pop(cdr.chain_key, [])  # a late CDR reopens it
        self._pending.append((cdr, tag))
        return done

    def take(self) -> list[tuple[AsteriskCdr, T]]:
        """The chain in progress, now taken as complete."""
        done, self._pending = self._pending, []
        if done:
            self._recent[done[0][0].chain_key] = done
            while len(self._recent) > self.RECENT:
                self._recent.popitem(last=False)
        return done


def _extension_like(text: str) -> str | None:
    text = text.strip()
    return text if _EXTENSION.fullmatch(text) else None
