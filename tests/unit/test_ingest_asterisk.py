"""Asterisk CDRs -> call-ended events: the pure mapping, on rows written the way ``cdr_csv.c``
writes ``Master.csv`` (quoted strings with doubled quotes, bare numbers, a bare empty field for
an unset time) and on ``Event: Cdr`` as ``cdr_manager.c`` sends it; chains of CDRs as
Asterisk 12+ makes them (one per Party B: queue members, transfers, forks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrstream.core.event import decode_event
from cdrstream.core.outcome import Policy, decide
from cdrstream.ingest.ami_messages import MAX_MESSAGE_BYTES, MessageReader, action
from cdrstream.ingest.asterisk_cdr import (
    CSV_LAYOUTS,
    AsteriskCdr,
    AsteriskConfig,
    Chains,
    chain_events,
    channel_parts,
    is_trunk,
    parse_ami_event,
    parse_csv_line,
)
from cdrstream.ingest.pbx_tenants import PbxTenants
from cdrstream.ingest.results import Mapped, Rejected

AMS = ZoneInfo("Europe/Amsterdam")
#: The carrier trunk carries tenant acme's calls (the tenants file's ``trunks``).
CONFIG = AsteriskConfig(
    zone=AMS, trunks=frozenset({"carrier"}), tenants=PbxTenants(trunks={"acme": ("carrier",)})
)
NOW = 1_795_594_443_120
POLICY = Policy(retention_ms=30 * 86_400_000)
ALL_COLUMNS = CSV_LAYOUTS[21]


def csv_row(columns: tuple[str, ...] = ALL_COLUMNS, **values: Any) -> str:
    """One Master.csv line as cdr_csv's build_csv_record writes it."""
    defaults: dict[str, Any] = {
        "accountcode": "acme",
        "src": "+31612345678",
        "dst": "0201234567",
        "dcontext": "from-trunk",
        "clid": '"Jan de Vries" <+31612345678>',
        "channel": "PJSIP/carrier-0000001a",
        "dstchannel": "PJSIP/201-0000001b",
        "lastapp": "Dial",
        "lastdata": "PJSIP/201,30,tT",
        "start": "2026-11-25 09:00:00",
        "answer": "2026-11-25 09:00:07",
        "end": "2026-11-25 09:02:07",
        "duration": 127,
        "billsec": 120,
        "disposition": "ANSWERED",
        "amaflags": "DOCUMENTATION",
        "uniqueid": "1795590000.26",
        "userfield": "",
        "peeraccount": "",
        "linkedid": "1795590000.26",
        "sequence": 41,
    }
    defaults.update(values)
    fields = []
    for name in columns:
        value = defaults[name]
        if isinstance(value, int):
            fields.append(str(value))
        elif name in ("start", "answer", "end") and value == "":
            fields.append("")  # append_date: an unset time is a bare empty field
        else:
            fields.append('"' + str(value).replace('"', '""') + '"')
    return ",".join(fields)


def cdr(**values: Any) -> AsteriskCdr:
    parsed = parse_csv_line(csv_row(**values), CONFIG)
    assert isinstance(parsed, AsteriskCdr), parsed
    return parsed


def events(*rows: AsteriskCdr, config: AsteriskConfig = CONFIG) -> list[dict]:
    results = chain_events(list(rows), config)
    assert all(isinstance(r, Mapped) for r in results), results
    return [r.event for r in results if isinstance(r, Mapped)]


def decided(event: dict) -> Any:
    return decide(orjson.dumps({**event, "tenant_region": "NL"}), NOW, POLICY)


# --- reading rows ------------------------------------------------------------------------


@pytest.mark.parametrize("count", sorted(CSV_LAYOUTS))
def test_every_cdr_csv_layout_is_read(count: int) -> None:
    parsed = parse_csv_line(csv_row(CSV_LAYOUTS[count]), CONFIG)
    assert isinstance(parsed, AsteriskCdr)
    assert parsed.src == "+31612345678"
    assert parsed.clid == '"Jan de Vries" <+31612345678>'
    assert parsed.uniqueid == ("1795590000.26" if "uniqueid" in CSV_LAYOUTS[count] else "")


def test_local_times_are_read_in_the_configured_zone() -> None:
    parsed = cdr()
    # 09:00:00 in Amsterdam in November is 08:00:00 UTC
    assert parsed.start_ms == int(datetime(2026, 11, 25, 8, tzinfo=UTC).timestamp()) * 1000
    utc = parse_csv_line(csv_row(), AsteriskConfig())
    assert isinstance(utc, AsteriskCdr)
    assert utc.start_ms - parsed.start_ms == 3_600_000  # usegmtime=yes: read as UTC


def test_the_ambiguous_hour_is_resolved_by_the_duration() -> None:
    """2026-10-25 02:30 happens twice in Amsterdam; end - start must equal duration."""
    first = cdr(start="2026-10-25 02:30:00", answer="", end="2026-10-25 02:40:00",
                duration=600, billsec=0, disposition="NO ANSWER")  # fmt: skip
    across = cdr(start="2026-10-25 02:50:00", answer="", end="2026-10-25 02:10:00",
                 duration=1200, billsec=0, disposition="NO ANSWER")  # fmt: skip
    assert first.end_ms - first.start_ms == 600_000
    assert across.end_ms - across.start_ms == 1_200_000  # CEST 02:50 -> CET 02:10


def test_unanswered_rows_have_no_answer_time() -> None:
    parsed = cdr(answer="", billsec=0, disposition="NO ANSWER")
    assert parsed.answer_ms is None
    assert parsed.disposition == "NO ANSWER"


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('"only","three","columns"', "row"),
        ("", "row"),
        ('"unterminated,"x', "row"),
        (csv_row(start="yesterday"), "start"),
        (csv_row(end=""), "end"),
        (csv_row(start="2026-02-30 10:00:00"), "start"),
        (csv_row(answer="25:00"), "answer"),
        (csv_row(duration="12s"), "duration"),
        (csv_row(billsec=-1), "billsec"),
        ("x" * 9000, "row"),
    ],
)
def test_unreadable_rows_are_refused_naming_the_column(line: str, field: str) -> None:
    result = parse_csv_line(line, CONFIG)
    assert isinstance(result, Rejected), result
    assert result.field == field
    assert "+316" not in result.reason


# --- the samples ------------------------------------------------------------------------


def test_inbound_call_answered_by_an_extension() -> None:
    (event,) = events(cdr())
    assert event == {
        "event_id": "ast:1795590000.26:PJSIP/carrier-0000001a",
        "tenant_id": "acme",
        "call_id": "1795590000.26:PJSIP/carrier-0000001a",
        "started_at": cdr().start_ms,
        "answered_at": cdr().start_ms + 7_000,
        "ended_at": cdr().start_ms + 127_000,
        "duration": 120,
        "caller": "+31612345678",
        "callee": "0201234567",
        "direction": "inbound",
        "disposition": "answered",
        "routed_to": "extension",
        "extension": "201",
    }
    record = decided(event).record
    assert (record.source, record.destination, record.extension) == (
        "+31612345678",
        "+31201234567",
        "201",
    )


@pytest.mark.parametrize(
    ("src", "clid"),
    [("", ""), ("anonymous", '"Anonymous" <anonymous>'), ("", '"" <>'), ("<unknown>", "")],
)
def test_withheld_callers(src: str, clid: str) -> None:
    (event,) = events(cdr(src=src, clid=clid))
    assert decided(event).record.source == "anonymous"


def test_queue_with_ring_all_is_one_answered_call_not_three() -> None:
    """Queue(support) rings 201, 202 and 203; 202 answers: one CDR per member."""
    rows = [
        cdr(dstchannel="PJSIP/201-00000021", lastapp="Queue", lastdata="support",
            answer="", billsec=0, disposition="NO ANSWER", end="2026-11-25 09:00:12"),
        cdr(dstchannel="PJSIP/202-00000022", lastapp="Queue", lastdata="support",
            answer="2026-11-25 09:00:12", billsec=115),
        cdr(dstchannel="PJSIP/203-00000023", lastapp="Queue", lastdata="support",
            answer="", billsec=0, disposition="NO ANSWER", end="2026-11-25 09:00:12"),
    ]  # fmt: skip
    (event,) = events(*rows)
    assert event["disposition"] == "answered"
    assert event["routed_to"] == "queue"
    assert event["duration"] == 115
    assert event["ended_at"] == rows[1].end_ms
    assert decided(event).record.extension == "0"  # a queue call shows no extension


def test_unanswered_queue_call_is_one_missed_call() -> None:
    rows = [
        cdr(dstchannel=f"PJSIP/20{i}-0000002{i}", lastapp="Queue", answer="", billsec=0,
            disposition="NO ANSWER")
        for i in (1, 2)
    ]  # fmt: skip
    (event,) = events(*rows)
    assert (event["disposition"], event["duration"]) == ("no_answer", 0)


def test_ivr_call_without_a_phone() -> None:
    """``dst`` is ``s``, not the number dialled: the tenant's number from the tenants file is."""
    row = cdr(dstchannel="", lastapp="BackGround", lastdata="custom/menu", dst="s")
    (result,) = chain_events([row], CONFIG)
    assert isinstance(result, Rejected) and result.field == "dst"
    tenants = PbxTenants(trunks={"acme": ("carrier",)}, numbers={"acme": ("0201234567",)})
    config = AsteriskConfig(zone=AMS, trunks=frozenset({"carrier"}), tenants=tenants)
    (event,) = events(row, config=config)
    assert event["routed_to"] == "ivr"
    assert event["callee"] == "0201234567"
    assert "extension" not in event


def test_voicemail_call() -> None:
    (event,) = events(cdr(dstchannel="", lastapp="VoiceMail", lastdata="201@default"))
    assert event["routed_to"] == "voicemail"


def test_blind_transfer_is_one_call_ending_at_the_new_extension() -> None:
    """201 answers, then transfers to 202: two CDRs of the carrier channel."""
    rows = [
        cdr(dstchannel="PJSIP/201-00000031", end="2026-11-25 09:01:00", billsec=53, duration=60),
        cdr(dstchannel="PJSIP/202-00000032", start="2026-11-25 09:01:00",
            answer="2026-11-25 09:01:04", end="2026-11-25 09:03:00", duration=120, billsec=116),
    ]  # fmt: skip
    (event,) = events(*rows)
    assert event["extension"] == "202"
    assert event["duration"] == 53 + 116
    assert event["started_at"] == rows[0].start_ms and event["ended_at"] == rows[1].end_ms
    assert event["callee"] == "0201234567"


def outbound(**values: Any) -> AsteriskCdr:
    """Extension 201 dials out through the carrier, presenting the tenant's DID."""
    base = {
        "src": "+31201234567",
        "clid": '"Reception" <+31201234567>',
        "dst": "0612345678",
        "dcontext": "from-internal",
        "channel": "PJSIP/201-00000040",
        "dstchannel": "PJSIP/carrier-00000041",
        "lastdata": "PJSIP/0612345678@carrier,60",
        "uniqueid": "1795590100.40",
    }
    return cdr(**{**base, **values})


def test_outbound_call_presents_the_did_and_names_the_extension() -> None:
    (event,) = events(outbound())
    assert (event["direction"], event["caller"], event["callee"], event["extension"]) == (
        "outbound",
        "+31201234567",
        "0612345678",
        "201",
    )
    assert event["call_id"] == "1795590100.40:PJSIP/carrier-00000041"
    record = decided(event).record
    assert (record.source, record.destination) == ("+31201234567", "+31612345678")


@pytest.mark.parametrize("dialled", ["112", "0112"])
def test_a_call_to_the_emergency_number_is_an_event_the_rules_hide(dialled: str) -> None:
    (event,) = events(outbound(dst=dialled, lastdata=f"PJSIP/{dialled}@carrier"))
    assert decided(event).outcome == "hidden_emergency"


def test_extension_to_extension_has_no_pstn_leg() -> None:
    internal = cdr(src="201", dst="202", channel="PJSIP/201-00000050",
                   dstchannel="PJSIP/202-00000051", dcontext="from-internal")  # fmt: skip
    assert chain_events([internal], CONFIG) == []


def test_a_call_forwarded_to_a_mobile_is_two_pstn_legs() -> None:
    forwarded = cdr(dstchannel="PJSIP/carrier-0000005b", lastdata="PJSIP/0687654321@carrier,30")
    inbound, out = events(forwarded)
    assert inbound["direction"] == "inbound" and out["direction"] == "outbound"
    assert out["callee"] == "0687654321"
    assert "extension" not in out
    assert inbound["call_id"] != out["call_id"]


def test_tenant_never_from_a_trunks_own_accountcode_else_the_default() -> None:
    row = cdr(accountcode="carrier-account")  # inbound: the accountcode is the trunk's
    unmapped = AsteriskConfig(zone=AMS, trunks=frozenset({"carrier"}))
    (result,) = chain_events([row], unmapped)
    assert isinstance(result, Rejected) and result.field == "accountcode"
    config = AsteriskConfig(zone=AMS, trunks=frozenset({"carrier"}), default_tenant="globex")
    assert events(row, config=config)[0]["tenant_id"] == "globex"


@pytest.mark.parametrize(
    ("channel", "trunks", "expected"),
    [
        ("PJSIP/carrier-0000001a", frozenset({"carrier"}), True),
        ("PJSIP/carrier-0000001a", frozenset({"PJSIP/carrier"}), True),
        ("SIP/carrier-0000001a", frozenset({"PJSIP/carrier"}), False),
        ("PJSIP/201-0000001a", frozenset({"carrier"}), False),
        ("PJSIP/carrier-0000001a", frozenset(), True),  # no list: non-numeric endpoints
        ("PJSIP/201-0000001a", frozenset(), False),
        ("Local/201@from-internal-00000003;1", frozenset(), False),
        ("", frozenset(), False),
    ],
)
def test_trunks(channel: str, trunks: frozenset[str], expected: bool) -> None:
    assert is_trunk(channel, trunks) is expected


def test_channel_parts() -> None:
    assert channel_parts("PJSIP/carrier-0000001a") == ("PJSIP", "carrier")
    assert channel_parts("Local/201@from-internal-00000003;1") == ("Local", "201@from-internal")
    assert channel_parts("DAHDI/1-1") == ("DAHDI", "1")


# --- AMI ------------------------------------------------------------------------------------


def ami_headers(**values: str) -> dict[str, str]:
    """``Event: Cdr`` as cdr_manager's manager_log sends it."""
    headers = {
        "Event": "Cdr",
        "Privilege": "cdr,all",
        "AccountCode": "acme",
        "Source": "+31612345678",
        "Destination": "0201234567",
        "DestinationContext": "from-trunk",
        "CallerID": '"Jan de Vries" <+31612345678>',
        "Channel": "PJSIP/carrier-0000001a",
        "DestinationChannel": "PJSIP/201-0000001b",
        "LastApplication": "Dial",
        "LastData": "PJSIP/201,30,tT",
        "StartTime": "2026-11-25 09:00:00",
        "AnswerTime": "2026-11-25 09:00:07",
        "EndTime": "2026-11-25 09:02:07",
        "Duration": "127",
        "BillableSeconds": "120",
        "Disposition": "ANSWERED",
        "AMAFlags": "DOCUMENTATION",
        "UniqueID": "1795590000.26",
        "UserField": "",
    }
    headers.update(values)
    return headers


def test_an_ami_cdr_is_the_same_event_as_its_csv_row() -> None:
    parsed = parse_ami_event(ami_headers(), CONFIG)
    assert isinstance(parsed, AsteriskCdr)
    assert events(parsed) == events(cdr())


def test_ami_unanswered_has_an_empty_answer_time() -> None:
    parsed = parse_ami_event(
        ami_headers(AnswerTime="", BillableSeconds="0", Disposition="NO ANSWER"), CONFIG
    )
    assert isinstance(parsed, AsteriskCdr) and parsed.answer_ms is None


def test_ami_event_without_a_field_is_refused_naming_the_header() -> None:
    headers = ami_headers()
    del headers["StartTime"]
    assert parse_ami_event(headers, CONFIG) == Rejected("StartTime", "missing")


def test_manager_protocol_messages_split_across_reads() -> None:
    stream = (
        b"Asterisk Call Manager/9.0.0\r\n"
        b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n"
        b"Event: FullyBooted\r\nPrivilege: system,all\r\n\r\n"
        + b"".join(f"{k}: {v}\r\n".encode() for k, v in ami_headers().items())
        + b"\r\n"
    )
    reader = MessageReader()
    messages = []
    for i in range(0, len(stream), 7):
        messages += reader.feed(stream[i : i + 7])
    assert [m.headers.get("Greeting") for m in messages[:1]] == ["Asterisk Call Manager/9.0.0"]
    assert messages[1].response == "Success"
    assert [m.event for m in messages[2:]] == ["FullyBooted", "Cdr"]
    assert messages[3].headers["CallerID"] == '"Jan de Vries" <+31612345678>'


def test_an_endless_message_is_cut_not_kept() -> None:
    reader = MessageReader()
    reader.feed(b"Asterisk Call Manager/9.0.0\r\n")
    out = reader.feed(b"Event: Cdr\r\n" + b"X: " + b"y" * (MAX_MESSAGE_BYTES + 10) + b"\r\n\r\n")
    assert len(out) == 1 and out[0].truncated


def test_login_action() -> None:
    assert action("Login", Username="cdr", Secret="s3cret", Events="cdr") == (
        b"Action: Login\r\nUsername: cdr\r\nSecret: s3cret\r\nEvents: cdr\r\n\r\n"
    )
    with pytest.raises(ValueError):
        action("Login", Username="x\r\nAction: Originate")


# --- chains -----------------------------------------------------------------------------------


def test_chains_group_consecutive_cdrs_of_one_party_a() -> None:
    chains: Chains[int] = Chains()
    a1, a2 = cdr(uniqueid="1.1"), cdr(uniqueid="1.1", dstchannel="PJSIP/202-1")
    b1 = cdr(uniqueid="2.2")
    assert chains.add(a1, 1) == []
    assert chains.add(a2, 2) == []
    assert chains.add(b1, 3) == [(a1, 1), (a2, 2)]
    assert chains.take() == [(b1, 3)]
    assert chains.take() == []


def test_a_late_cdr_reopens_its_chain_which_is_delivered_again_whole() -> None:
    chains: Chains[int] = Chains()
    a1, a2 = cdr(uniqueid="1.1"), cdr(uniqueid="1.1", dstchannel="PJSIP/202-1")
    chains.add(a1, 1)
    assert chains.take() == [(a1, 1)]  # quiet for a while: taken as complete
    assert chains.add(a2, 2) == []  # ... but another CDR of it came
    assert chains.take() == [(a1, 1), (a2, 2)]
    (event,) = events(a1, a2)
    assert event["event_id"] == events(a1)[0]["event_id"]  # the same event, now whole


# --- never raises -----------------------------------------------------------------------------

_field = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "2026-11-25 09:00:00", "ANSWERED", "PJSIP/carrier-1", "PJSIP/201-2",
                     "Queue", "12", "-1", '"', "1795590000.1", "0112"]),
)  # fmt: skip


@settings(max_examples=400)
@given(st.lists(_field, min_size=0, max_size=24))
def test_reading_any_row_never_raises_and_maps_only_acceptable_events(values: list[str]) -> None:
    line = ",".join('"' + v.replace('"', '""') + '"' for v in values)
    parsed = parse_csv_line(line, CONFIG)
    assert isinstance(parsed, AsteriskCdr | Rejected)
    if isinstance(parsed, AsteriskCdr):
        for result in chain_events([parsed, parsed], CONFIG):
            assert isinstance(result, Mapped | Rejected)
            if isinstance(result, Mapped):
                decode_event(orjson.dumps(result.event))


@settings(max_examples=300)
@given(st.binary(max_size=400) | st.text(max_size=200))
def test_reading_any_bytes_never_raises(line: bytes | str) -> None:
    assert isinstance(parse_csv_line(line, CONFIG), AsteriskCdr | Rejected)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(sorted(ami_headers())), _field, max_size=22))
def test_reading_any_ami_event_never_raises(headers: dict[str, str]) -> None:
    parsed = parse_ami_event({**ami_headers(), **headers}, CONFIG)
    assert isinstance(parsed, AsteriskCdr | Rejected)
    if isinstance(parsed, AsteriskCdr):
        assert all(isinstance(r, Mapped | Rejected) for r in chain_events([parsed], CONFIG))


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=200), max_size=10))
def test_the_manager_stream_reader_never_raises(chunks: list[bytes]) -> None:
    reader = MessageReader()
    for chunk in chunks:
        for message in reader.feed(chunk):
            assert isinstance(message.headers, dict)
