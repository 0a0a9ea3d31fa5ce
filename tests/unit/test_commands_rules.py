"""`cdrstream normalize` and `cdrstream explain`, through the real CLI entry point."""

from __future__ import annotations

import io
import random
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from cdrstream.cli import main
from cdrstream.core.record import record_id
from cdrstream.simulation.calls import generate_events

NOW = "2026-11-25T09:14:03.120+01:00"
NOW_MS = 1_795_594_443_120


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEFAULT_REGION", "DISPLAY_TZ", "TENANTS_FILE", "RETENTION_DAYS"):
        monkeypatch.delenv(f"CDRSTREAM_{name}", raising=False)


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    out = capsys.readouterr().out
    assert out.endswith("\n") or out == ""
    return [orjson.loads(line) for line in out.splitlines()]


# --- normalize --------------------------------------------------------------------------


def test_normalize_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    raws = ["020 123 4567", "112", "+32116000", "anonymous", "201", "sip:alice@example.com"]
    assert main(["normalize", "--region", "NL", *raws]) == 0
    assert _lines(capsys) == [
        {"raw": "020 123 4567", "region": "NL", "e164": "+31201234567", "class": "pstn"},
        {"raw": "112", "region": "NL", "e164": None, "class": "emergency"},
        {"raw": "+32116000", "region": "NL", "e164": "+32116000", "class": "social_value"},
        {"raw": "anonymous", "region": "NL", "e164": None, "class": "withheld"},
        {"raw": "201", "region": "NL", "e164": None, "class": "invalid"},  # an extension
        {"raw": "sip:alice@example.com", "region": "NL", "e164": None, "class": "invalid"},
    ]


def test_normalize_outside_line_and_lower_case_region(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["normalize", "--region", "gb", "--outside-line", "9", "9 0121 234 5678"]) == 0
    assert _lines(capsys) == [
        {"raw": "9 0121 234 5678", "region": "GB", "e164": "+441212345678", "class": "pstn"}
    ]


def test_normalize_reads_stdin_when_no_arguments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, b"030 123456\r\n\n110\n\xff\xfe\n0049 30 123456")
    assert main(["normalize", "--region", "DE"]) == 0
    lines = _lines(capsys)
    assert [(line["raw"], line["e164"], line["class"]) for line in lines] == [
        ("030 123456", "+4930123456", "pstn"),
        ("110", None, "emergency"),
        ("\ufffd\ufffd", None, "invalid"),
        ("0049 30 123456", "+4930123456", "pstn"),
    ]


def test_normalize_region_defaults_to_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDRSTREAM_DEFAULT_REGION", "BE")
    assert main(["normalize", "02 511 12 34"]) == 0
    assert _lines(capsys)[0]["e164"] == "+3225111234"


@pytest.mark.parametrize(
    "argv",
    [
        ["normalize", "--region", "XX", "1"],
        ["normalize", "--region", "NL", "--outside-line", "a", "1"],
    ],
)
def test_normalize_bad_options(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "cdrstream normalize:" in captured.err


# --- explain ----------------------------------------------------------------------------


def _event(**changes: object) -> bytes:
    base = {
        "event_id": "ev-1",
        "tenant_id": "acme",
        "call_id": "call-1",
        "started_at": NOW,
        "answered_at": None,
        "ended_at": NOW_MS + 1_000,
        "caller": "201",
        "callee": "020 123 4567",
        "disposition": "busy",
    }
    base.update(changes)
    return orjson.dumps(base)


def test_explain_each_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        _event(),
        _event(event_id="ev-2", callee="112"),
        b"",
        b"not json",
        _event(event_id="ev-3", direction="sideways"),
        _event(event_id="ev-4", callee="116000"),
        _event(event_id="ev-5", callee="202"),
    ]
    _stdin(monkeypatch, b"\n".join(lines) + b"\n")
    assert main(["explain", "--now", NOW]) == 0
    out = _lines(capsys)
    assert [(o["event_id"], o["outcome"], o["reason"]) for o in out] == [
        ("ev-1", "stored", None),
        ("ev-2", "hidden_emergency", "emergency 112 (NL), as dialled"),
        (None, "invalid", "not_json"),
        (None, "invalid", "not_json"),
        ("ev-3", "invalid", "bad_direction"),
        ("ev-4", "hidden_social_value", "social_value 116000 (+31), as dialled"),
        ("ev-5", "hidden_internal", None),
    ]
    assert out[0]["record"] == {
        "id": record_id("acme", "call-1"),
        "call_id": "call-1",
        "started_at": "2026-11-25T08:14:03.120Z",
        "started_at_local": "2026-11-25T09:14:03.120+01:00",
        "answered_at": None,
        "ended_at": "2026-11-25T08:14:04.120Z",
        "duration": 0,
        "source": "201",
        "source_raw": "201",
        "destination": "+31201234567",
        "destination_raw": "020 123 4567",
        "extension": "201",
        "direction": "outbound",
        "disposition": "busy",
    }
    assert all(o["record"] is None for o in out[1:])


def test_explain_retention_and_now(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, _event() + b"\n")
    assert main(["explain", "--now", str(NOW_MS + 2 * 86_400_000), "--retention-days", "1"]) == 0
    assert _lines(capsys)[0]["outcome"] == "expired"
    _stdin(monkeypatch, _event() + b"\n")
    assert main(["explain", "--now", "2026-11-27T09:14:03+01:00", "--retention-days", "3"]) == 0
    assert _lines(capsys)[0]["outcome"] == "stored"


def test_explain_uses_settings_and_tenants_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tenants = tmp_path / "tenants.json"
    tenants.write_bytes(orjson.dumps({"acme": {"region": "GB", "outside_line": "9"}}))
    monkeypatch.setenv("CDRSTREAM_TENANTS_FILE", str(tenants))
    monkeypatch.setenv("CDRSTREAM_DISPLAY_TZ", "Asia/Tokyo")
    monkeypatch.setenv("CDRSTREAM_DEFAULT_REGION", "DE")
    _stdin(
        monkeypatch,
        b"\n".join(
            [
                _event(callee="9 0121 234 5678"),
                _event(callee="9999"),
                _event(tenant_id="globex", callee="030 123456"),
            ]
        ),
    )
    assert main(["explain", "--now", NOW]) == 0
    out = _lines(capsys)
    assert out[0]["record"]["destination"] == "+441212345678"  # type: ignore[index]
    assert out[0]["record"]["started_at_local"] == "2026-11-25T17:14:03.120+09:00"  # type: ignore[index]
    assert out[1]["outcome"] == "hidden_emergency"
    assert out[2]["record"]["destination"] == "+4930123456"  # type: ignore[index]


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"acme": {"region": "XX"}}', "region"),
        (b'{"acme": {"outside_line": "zero"}}', "outside_line"),
        (b'{"acme": {"regoin": "NL"}}', "unknown keys"),
        (b'{"bad id": {}}', "not a tenant id"),
    ],
)
def test_explain_refuses_a_bad_tenants_file(
    contents: bytes,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    tenants = tmp_path / "tenants.json"
    tenants.write_bytes(contents)
    monkeypatch.setenv("CDRSTREAM_TENANTS_FILE", str(tenants))
    _stdin(monkeypatch, _event())
    assert main(["explain"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err and "Traceback" not in captured.err


def test_explain_bad_display_zone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDRSTREAM_DISPLAY_TZ", "Mars/Olympus")
    _stdin(monkeypatch, _event())
    assert main(["explain"]) == 2
    assert "Mars/Olympus" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "--now", "yesterday"],
        ["explain", "--now", "2026-11-25T09:14:03"],
        ["explain", "--retention-days", "0"],
        ["explain", "--retention-days", "x"],
    ],
)
def test_explain_bad_options(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_explain_10000_generated_events_with_garbage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(2026)
    values = [
        value
        for _, value in generate_events(
            rng, tenants=[f"t{i}" for i in range(25)], now_ms=NOW_MS, count=10_000
        )
    ]
    garbage = [b"\x00\xff", b"{", b"[]", b'{"event_id": "x"}', b"\xe2\x28\xa1", b"   "]
    for n, junk in enumerate(garbage):
        values.insert(n * 1500, junk)
    assert not any(b"\n" in value for value in values)
    _stdin(monkeypatch, b"\n".join(values) + b"\n")
    assert main(["explain", "--now", NOW]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    out = [orjson.loads(line) for line in captured.out.splitlines()]
    assert len(out) == len(values) == 10_006
    outcomes = Counter(o["outcome"] for o in out)
    assert set(outcomes) == {
        "stored",
        "hidden_internal",
        "hidden_emergency",
        "hidden_social_value",
        "invalid",
    }
    assert outcomes["stored"] > 8_000
    assert 60 <= outcomes["invalid"] <= 200  # 1% malformed plus the garbage lines
    assert not any((o["reason"] or "").startswith("internal_error") for o in out)
    for o in out:
        assert (o["record"] is not None) == (o["outcome"] == "stored")
        assert (o["reason"] is not None) == (
            o["outcome"] in ("invalid", "hidden_emergency", "hidden_social_value")
        )


def test_explain_expired_with_generated_events(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    values = [
        value
        for _, value in generate_events(
            random.Random(3), tenants=["acme"], now_ms=NOW_MS, count=300, malformed_ratio=0
        )
    ]
    _stdin(monkeypatch, b"\n".join(values))
    assert main(["explain", "--now", str(NOW_MS + 31 * 86_400_000)]) == 0
    outcomes = Counter(o["outcome"] for o in _lines(capsys))
    assert outcomes["expired"] > 200 and outcomes["stored"] == 0
