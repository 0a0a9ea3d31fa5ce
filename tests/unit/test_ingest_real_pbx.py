"""Real PBX records (tests/fixtures/pbx/, sources in its README.md) against what an operator
of that PBX reads in them, written by hand (issue 21).

The operator's settings: the Russian PBX (Zelenogorsk, Asia/Krasnoyarsk, UTC+7) has two PSTN
trunks, ``KTTK`` (a SIP carrier) and ``avayaG700`` (the H.323 media gateway); ``avayaipo``
is a tie line to an Avaya IP Office, not the PSTN. Its users dial ``0`` for an outside line,
and callers reach it on 8 800 775 78 00 (the IVR). The FreeSWITCH dialer (India, +05:30)
calls out through the gateway ``sipptester``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cdrstream.commands.ingest_map import adapter_configs
from cdrstream.core.outcome import Policy, decide
from cdrstream.ingest.asterisk_cdr import AsteriskConfig
from cdrstream.ingest.freeswitch_cdr import FreeswitchConfig
from cdrstream.ingest.preview import (
    preview_asterisk_ami,
    preview_asterisk_csv,
    preview_freeswitch,
)
from cdrstream.settings import load_settings
from cdrstream.tenant_profiles import load_tenant_profiles

FIXTURES = Path(__file__).parent.parent / "fixtures" / "pbx"
TENANTS = FIXTURES / "tenants.json"
ENV = {
    "CDRSTREAM_ASTERISK_TZ": "Asia/Krasnoyarsk",
    "CDRSTREAM_ASTERISK_TRUNKS": "KTTK,avayaG700",
    "CDRSTREAM_TENANTS_FILE": str(TENANTS),
}


def configs(**env: str) -> tuple[FreeswitchConfig, AsteriskConfig, list[str]]:
    built = adapter_configs(load_settings({**ENV, **env}))
    assert not isinstance(built, str), built
    return built


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


# --- Asterisk: Master.csv of the Russian PBX (18 columns) --------------------------------

RU = FIXTURES / "asterisk" / "ru_h323_18col.csv"

#: Line -> what the operator reads in the chain starting there.
RU_EXPECTED: dict[int, dict[str, Any]] = {
    # 2889 dials 0 924 382 04 31 (outside line 0): through a Local channel to the G700
    # gateway; the phone dialled at 11:05:01, the far end answered at 11:05:20, 183 s talk.
    1: {
        "events": [
            {
                "event_id": "ast:1536293101.12458:OOH323/avayaG700-1919",
                "tenant_id": "zgtel",
                "call_id": "1536293101.12458:OOH323/avayaG700-1919",
                "started_at": ms("2018-09-07T11:05:01+07:00"),
                "answered_at": ms("2018-09-07T11:05:20+07:00"),
                "ended_at": ms("2018-09-07T11:08:24+07:00"),
                "duration": 183,
                "caller": "2889",
                "callee": "09243820431",
                "direction": "outbound",
                "disposition": "answered",
                "extension": "2889",
                "tenant_region": "RU",
            }
        ],
        "skipped": None,
        "rejected": None,
    },
    # A caller from 999 683 78 40 calls 8 800 775 78 00 over KTTK, presses 1 in the IVR
    # (dst "1"), reaches 2998 (a Local channel) and 2910 answers: answered at 11:07:30 by
    # the IVR, 9 + 50 s, the B number is the number dialled, never the key pressed.
    3: {
        "events": [
            {
                "event_id": "ast:1536293250.12602:SIP/KTTK-000009ae",
                "tenant_id": "zgtel",
                "call_id": "1536293250.12602:SIP/KTTK-000009ae",
                "started_at": ms("2018-09-07T11:07:30+07:00"),
                "answered_at": ms("2018-09-07T11:07:30+07:00"),
                "ended_at": ms("2018-09-07T11:08:29+07:00"),
                "duration": 59,
                "caller": "9996837840",
                "callee": "88007757800",
                "direction": "inbound",
                "disposition": "answered",
                "routed_to": "extension",
                "extension": "2910",
                "tenant_region": "RU",
            }
        ],
        "skipped": None,
        "rejected": None,
    },
    # 2863 dials 0 908 325 85 57: rang 10 s, 16 s talk on the G700.
    5: {
        "events": [
            {
                "event_id": "ast:1536293284.12655:OOH323/avayaG700-1946",
                "tenant_id": "zgtel",
                "call_id": "1536293284.12655:OOH323/avayaG700-1946",
                "started_at": ms("2018-09-07T11:08:04+07:00"),
                "answered_at": ms("2018-09-07T11:08:14+07:00"),
                "ended_at": ms("2018-09-07T11:08:31+07:00"),
                "duration": 16,
                "caller": "2863",
                "callee": "09083258557",
                "direction": "outbound",
                "disposition": "answered",
                "extension": "2863",
                "tenant_region": "RU",
            }
        ],
        "skipped": None,
        "rejected": None,
    },
    # The G700 channel's own CDR of that same call (AppDial, accountcode ast_h323 of the
    # trunk): no second record, and never an inbound one under tenant ast_h323.
    7: {"events": [], "skipped": "dialled_leg", "rejected": None},
    # 3711 on the Avaya IP Office tie line rings 1110: a call between the PBXs, no PSTN.
    8: {"events": [], "skipped": "not_pstn_leg", "rejected": None},
    # 1111 rings 1314: internal.
    9: {"events": [], "skipped": "not_pstn_leg", "rejected": None},
}


def test_russian_master_csv_one_record_per_pstn_call() -> None:
    _fs, ast, _warnings = configs()
    got = preview_asterisk_csv("ru.csv", RU.read_bytes(), ast)
    expected = [{"source": f"ru.csv:{line}", **want} for line, want in RU_EXPECTED.items()]
    assert got == expected


def test_russian_numbers_read_in_russia_with_the_outside_line() -> None:
    """The worker reads each number in the tenant's region (RU, carried by the event) and
    strips the outside line 0 from the dialled side: +7, never +31."""
    _fs, ast, _warnings = configs()
    previews = preview_asterisk_csv("ru.csv", RU.read_bytes(), ast)
    events = [event for item in previews for event in item["events"]]
    policy = Policy(
        retention_ms=10_000 * 86_400_000, default_region="NL", tenants=load_tenant_profiles(TENANTS)
    )
    numbers = []
    for event in events:
        record = decide(_json(event), ms("2018-09-08T00:00:00+00:00"), policy).record
        assert record is not None
        numbers.append((record.source, record.destination))
    assert numbers == [
        ("2889", "+79243820431"),
        ("+79996837840", "+78007757800"),
        ("2863", "+79083258557"),
    ]


def test_same_rows_without_the_uniqueid_column_are_one_call_each() -> None:
    """cdr_csv without loguniqueid/loguserfield writes the same rows as 16 columns: the two
    rows of the IVR call share their channel and stay one call (one record, 59 s)."""
    _fs, ast, _warnings = configs()
    lines = RU.read_bytes().splitlines()[2:4]
    sixteen = b"\n".join(line.rsplit(b",", 2)[0] for line in lines)
    (item,) = preview_asterisk_csv("ru16.csv", sixteen, ast)
    (event,) = item["events"]
    assert event["event_id"] == "ast:SIP/KTTK-000009ae@1536293250:SIP/KTTK-000009ae"
    assert (event["duration"], event["callee"], event["extension"]) == (59, "88007757800", "2910")


def test_without_a_tenants_file_the_start_message_names_the_fallback_region() -> None:
    _fs, _ast, warnings = configs(CDRSTREAM_TENANTS_FILE="")
    assert warnings == [
        "CDRSTREAM_TENANTS_FILE is not set: every tenant's numbers are read as numbers of NL "
        "(CDRSTREAM_DEFAULT_REGION); give each tenant its region there"
    ]
    assert configs()[2] == []


def test_a_trunks_accountcode_is_never_the_tenant() -> None:
    """An operator who counts the IP Office tie line as a trunk, with the accountcode as the
    only tenant source: the tie line's call carries the trunk's own code ``ast_h323``, which
    is no tenant, so the call is refused (dead letter, reason named), not filed under it."""
    _fs, ast, _warnings = configs(
        CDRSTREAM_ASTERISK_TENANT_SOURCES="accountcode",
        CDRSTREAM_ASTERISK_TRUNKS="KTTK,avayaG700,avayaipo",
        CDRSTREAM_TENANTS_FILE="",
    )
    previews = preview_asterisk_csv("ru.csv", RU.read_bytes(), ast)
    tenants = {event["tenant_id"] for item in previews for event in item["events"]}
    assert "ast_h323" not in tenants
    by_source = {item["source"]: item for item in previews}
    assert by_source["ru.csv:8"]["rejected"]["field"] == "accountcode"
    assert by_source["ru.csv:3"]["rejected"]["field"] == "accountcode"


@pytest.mark.parametrize(
    ("name", "sources"),
    [
        # asterisk/testsuite: Console/dsp and SIP/test calls, no trunk
        ("testsuite_18col.csv", ["1", "2", "3"]),
        # the Asterisk book's 16-column sample: phone to phone
        ("book_16col.csv", ["1", "2", "3", "4", "5"]),
    ],
)
def test_internal_samples_give_no_record(name: str, sources: list[str]) -> None:
    _fs, ast, _warnings = configs()
    got = preview_asterisk_csv(name, (FIXTURES / "asterisk" / name).read_bytes(), ast)
    assert got == [
        {"source": f"{name}:{s}", "events": [], "skipped": "not_pstn_leg", "rejected": None}
        for s in sources
    ]


def test_ami_blocks_give_the_same_records_as_the_file() -> None:
    _fs, ast, _warnings = configs()
    data = (FIXTURES / "ami" / "ru_h323_cdr_manager.txt").read_bytes()
    got = preview_asterisk_ami("ami.txt", data, ast)
    assert [item["events"] for item in got] == [RU_EXPECTED[n]["events"] for n in (1, 3, 5, 7)]
    assert [item["source"] for item in got] == ["ami.txt:0", "ami.txt:2", "ami.txt:4", "ami.txt:6"]


# --- FreeSWITCH mod_json_cdr documents ----------------------------------------------------


def test_originate_leg_presents_the_origination_number() -> None:
    """A dialer's ``originate`` through gateway sipptester: the caller profile is flipped
    (caller id = the called number); the number presented is 9111110001; no domain_name, the
    gateway names the tenant."""
    fs, _ast, _warnings = configs()
    data = (FIXTURES / "freeswitch" / "onex_originate_gateway_leg.json").read_bytes()
    assert preview_freeswitch("originate.json", data, fs) == {
        "source": "originate.json",
        "events": [
            {
                "event_id": "fs:16c22a18-eccc-4974-adf9-44d2b6152838:a",
                "tenant_id": "campaigns",
                "call_id": "16c22a18-eccc-4974-adf9-44d2b6152838",
                "started_at": ms("2025-11-12T13:03:58.915+05:30"),
                "answered_at": ms("2025-11-12T13:03:58.915+05:30"),
                "ended_at": ms("2025-11-12T13:04:05.655+05:30"),
                "duration": 7,
                "caller": "9111110001",
                "callee": "3868158407",
                "direction": "outbound",
                "disposition": "answered",
                "tenant_region": "IN",
            }
        ],
        "skipped": None,
        "rejected": None,
    }


@pytest.mark.parametrize(
    "name",
    [
        "onex_internal_a_leg_cancelled.json",  # 1001 calls 1003, cancelled: internal A-leg
        "onex_internal_b_leg_cancelled.json",  # its B-leg ringing 1003
        "cgrates_3da8bf84.json",  # 1001 -> 1002 on the internal profile
        "cgrates_c8ccef5e.json",  # 1001 -> 1002, internal
        "cgrates_e3133bf7.json",  # 1001 -> 1003 on profile cgrtest
        "cgrates_01df56f4.json",  # dan's on-net call, redirected (old callflow object form)
        "cgrates_5a3a1d91.json",  # 1001 -> 1002, internal, answered (CGRateS agents test)
    ],
)
def test_internal_freeswitch_legs_give_no_record(name: str) -> None:
    fs, _ast, _warnings = configs()
    data = (FIXTURES / "freeswitch" / name).read_bytes()
    assert preview_freeswitch(name, data, fs) == {
        "source": name,
        "events": [],
        "skipped": "not_pstn_leg",
        "rejected": None,
    }


def _json(event: dict[str, Any]) -> bytes:
    import orjson

    return orjson.dumps(event)


# --- Forwarded and transferred calls (issue 21 item 7; derived fixtures, README) ---------


def _ru(**fields: Any) -> dict[str, Any]:
    """An event of the Russian PBX: tenant zgtel, region RU."""
    return {"tenant_id": "zgtel", **fields, "tenant_region": "RU"}


def _at(text: str) -> int:
    return ms(f"2018-09-07T{text}+07:00")


def test_inbound_call_forwarded_to_a_mobile_is_two_records() -> None:
    """9996837840 calls 8 800 775 78 00 over KTTK; the dialplan forwards it to the mobile
    0 924 382 04 31 through a Local channel and the G700: one record in (no extension took
    it: extension 0), one out (to the mobile, presenting the caller)."""
    _fs, ast, _warnings = configs()
    data = (FIXTURES / "asterisk" / "ru_forward_derived_18col.csv").read_bytes()
    common = {
        "started_at": _at("11:05:01"),
        "answered_at": _at("11:05:20"),
        "ended_at": _at("11:08:24"),
        "duration": 183,
        "caller": "9996837840",
        "disposition": "answered",
    }
    inbound = _ru(
        event_id="ast:1536293101.12458:SIP/KTTK-0000098d",
        call_id="1536293101.12458:SIP/KTTK-0000098d",
        callee="88007757800",
        direction="inbound",
        routed_to="forward",
        **common,
    )
    outbound = _ru(
        event_id="ast:1536293101.12458:OOH323/avayaG700-1919",
        call_id="1536293101.12458:OOH323/avayaG700-1919",
        callee="09243820431",
        direction="outbound",
        **common,
    )
    (got,) = preview_asterisk_csv("fwd.csv", data, ast)
    assert got == {"source": "fwd.csv:1", "events": [inbound, outbound], "skipped": None,
                   "rejected": None}  # fmt: skip
    assert _records(got["events"]) == [
        ("inbound", "+79996837840", "+78007757800", "0"),
        ("outbound", "+79996837840", "+79243820431", "0"),
    ]


def test_blind_transfer_to_an_outside_number_is_two_records() -> None:
    """The IVR call: 2910 answers (9 + 50 s), then transfers the caller blind to
    0 908 325 85 57 (G700, answered after 10 s, 16 s talk). In: the whole call, 75 s,
    extension 2910 who took it; out: from the transfer to the end."""
    _fs, ast, _warnings = configs()
    data = (FIXTURES / "asterisk" / "ru_blind_transfer_derived_18col.csv").read_bytes()
    inbound = _ru(
        event_id="ast:1536293250.12602:SIP/KTTK-000009ae",
        call_id="1536293250.12602:SIP/KTTK-000009ae",
        started_at=_at("11:07:30"),
        answered_at=_at("11:07:30"),
        ended_at=_at("11:08:56"),
        duration=75,
        caller="9996837840",
        callee="88007757800",
        direction="inbound",
        disposition="answered",
        routed_to="extension",
        extension="2910",
    )
    outbound = _ru(
        event_id="ast:1536293250.12602:OOH323/avayaG700-1946",
        call_id="1536293250.12602:OOH323/avayaG700-1946",
        started_at=_at("11:08:29"),
        answered_at=_at("11:08:39"),
        ended_at=_at("11:08:56"),
        duration=16,
        caller="9996837840",
        callee="09083258557",
        direction="outbound",
        disposition="answered",
    )
    (got,) = preview_asterisk_csv("blind.csv", data, ast)
    assert got["events"] == [inbound, outbound]


def test_attended_transfer_the_outbound_crossing_is_the_phones_own_record() -> None:
    """2910 answers the IVR call, calls 0 908 325 85 57 itself (its own chain: an outbound
    record, extension 2910), then joins the two. The carrier caller's chain then has a
    KTTK -> G700 row: more talk time for the inbound record (9 + 52 + 60 s), never a second
    record of the same G700 channel."""
    _fs, ast, _warnings = configs()
    data = (FIXTURES / "asterisk" / "ru_attended_transfer_derived_18col.csv").read_bytes()
    consult = _ru(
        event_id="ast:1536293284.12655:OOH323/avayaG700-1946",
        call_id="1536293284.12655:OOH323/avayaG700-1946",
        started_at=_at("11:08:04"),
        answered_at=_at("11:08:14"),
        ended_at=_at("11:08:31"),
        duration=16,
        caller="2910",
        callee="09083258557",
        direction="outbound",
        disposition="answered",
        extension="2910",
    )
    inbound = _ru(
        event_id="ast:1536293250.12602:SIP/KTTK-000009ae",
        call_id="1536293250.12602:SIP/KTTK-000009ae",
        started_at=_at("11:07:30"),
        answered_at=_at("11:07:30"),
        ended_at=_at("11:09:31"),
        duration=121,
        caller="9996837840",
        callee="88007757800",
        direction="inbound",
        disposition="answered",
        routed_to="extension",
        extension="2910",
    )
    got = preview_asterisk_csv("att.csv", data, ast)
    assert [(item["source"], item["events"]) for item in got] == [
        ("att.csv:1", [consult]),
        ("att.csv:3", [inbound]),
    ]


def test_seventeen_columns_loguniqueid_without_userfield() -> None:
    """cdr_csv with loguniqueid=yes, loguserfield=no writes 17 columns, the 17th the
    uniqueid: the same records as the 18-column rows."""
    _fs, ast, _warnings = configs()
    data = (FIXTURES / "asterisk" / "ru_h323_17col_derived.csv").read_bytes()
    got = preview_asterisk_csv("ru17.csv", data, ast)
    assert [item["events"] for item in got] == [RU_EXPECTED[1]["events"], RU_EXPECTED[3]["events"]]


def test_freeswitch_inbound_leg_forwarded_to_the_pstn() -> None:
    """A carrier leg (profile external) bridged to a leg on the external profile (the
    forward out): answered, 21 s, no extension took it."""
    fs, _ast, _warnings = configs()
    name = "derived_forward_a_leg_from_cgrates_5a3a1d91.json"
    data = (FIXTURES / "freeswitch" / name).read_bytes()
    assert preview_freeswitch(name, data, fs)["events"] == [
        {
            "event_id": "fs:5a3a1d91-90d3-4db4-af5c-cc3ae15d93a4:a",
            "tenant_id": "192.168.56.202",
            "call_id": "5a3a1d91-90d3-4db4-af5c-cc3ae15d93a4",
            "started_at": 1521025758006,
            "answered_at": 1521025767766,
            "ended_at": 1521025788366,
            "duration": 21,
            "caller": "1001",
            "callee": "1002",
            "direction": "inbound",
            "disposition": "answered",
            "routed_to": "forward",
        }
    ]


def test_freeswitch_missed_inbound_call() -> None:
    """A carrier leg the caller hung up before anyone answered (ORIGINATOR_CANCEL)."""
    fs, _ast, _warnings = configs()
    name = "derived_missed_inbound_from_onex_a_leg.json"
    data = (FIXTURES / "freeswitch" / name).read_bytes()
    assert preview_freeswitch(name, data, fs)["events"] == [
        {
            "event_id": "fs:51156b0b-f91b-4fd3-9c8f-15226f6098be:a",
            "tenant_id": "10.30.40.77",
            "call_id": "51156b0b-f91b-4fd3-9c8f-15226f6098be",
            "started_at": 1762923102707,
            "ended_at": 1762923116247,
            "duration": 0,
            "caller": "1001",
            "callee": "1003",
            "direction": "inbound",
            "disposition": "cancelled",
            "tenant_region": "IN",
        }
    ]


def test_freeswitch_both_legs_of_a_bridged_pstn_call() -> None:
    """1001 calls out through gateway sipptester: the A-leg (1001's phone, internal) is no
    record, the B-leg through the gateway is the outbound one (cancelled while ringing)."""
    fs, _ast, _warnings = configs()
    a_leg = (FIXTURES / "freeswitch" / "onex_internal_a_leg_cancelled.json").read_bytes()
    b_leg = (FIXTURES / "freeswitch" / "derived_gateway_b_leg_from_onex_b_leg.json").read_bytes()
    assert preview_freeswitch("a", a_leg, fs)["skipped"] == "not_pstn_leg"
    assert preview_freeswitch("b", b_leg, fs)["events"] == [
        {
            "event_id": "fs:ab0aa08a-ead3-42c6-a365-99553a001fba:b",
            "tenant_id": "campaigns",
            "call_id": "ab0aa08a-ead3-42c6-a365-99553a001fba",
            "started_at": 1762923112727,
            "ended_at": 1762923116247,
            "duration": 0,
            "caller": "1001",
            "callee": "1003",
            "direction": "outbound",
            "disposition": "cancelled",
            "extension": "1001",
            "tenant_region": "IN",
        }
    ]


def _records(events: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(direction, A, B, extension) of the records the worker makes of these events (no
    extension on a PSTN-to-PSTN leg: "0", contract §3 rule 5)."""
    policy = Policy(
        retention_ms=10_000 * 86_400_000, default_region="NL", tenants=load_tenant_profiles(TENANTS)
    )
    out = []
    for event in events:
        record = decide(_json(event), ms("2018-09-08T00:00:00+00:00"), policy).record
        assert record is not None
        out.append((record.direction, record.source, record.destination, record.extension))
    return out
