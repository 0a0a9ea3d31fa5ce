"""`cdrstream ingest map` and its pipe into `cdrstream explain` (issue 21)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import orjson
import pytest

from cdrstream.cli import main

FIXTURES = Path(__file__).parent.parent / "fixtures" / "pbx"


@pytest.fixture(autouse=True)
def _operator_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDRSTREAM_ASTERISK_TZ", "Asia/Krasnoyarsk")
    monkeypatch.setenv("CDRSTREAM_ASTERISK_TRUNKS", "KTTK,avayaG700")
    monkeypatch.setenv("CDRSTREAM_TENANTS_FILE", str(FIXTURES / "tenants.json"))


def test_map_prints_one_line_per_chain_and_reads_every_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    csv = str(FIXTURES / "asterisk" / "ru_h323_18col.csv")
    book = str(FIXTURES / "asterisk" / "book_16col.csv")
    assert main(["ingest", "map", "--format", "asterisk-csv", csv, book]) == 0
    out = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["source"] for o in out] == [f"{csv}:{n}" for n in (1, 3, 5, 7, 8, 9)] + [
        f"{book}:{n}" for n in range(1, 6)
    ]
    assert [len(o["events"]) for o in out] == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]


def test_map_exits_2_when_a_file_cannot_be_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.json"
    good = str(FIXTURES / "freeswitch" / "onex_originate_gateway_leg.json")
    assert main(["ingest", "map", "--format", "freeswitch", str(missing), good]) == 2
    captured = capsys.readouterr()
    assert "nope.json: cannot read" in captured.err
    (line,) = captured.out.splitlines()
    assert orjson.loads(line)["events"][0]["caller"] == "9111110001"


def test_map_names_the_fallback_region_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CDRSTREAM_TENANTS_FILE")
    monkeypatch.setenv("CDRSTREAM_INGEST_DEFAULT_TENANT", "zgtel")
    csv = str(FIXTURES / "asterisk" / "ru_h323_18col.csv")
    assert main(["ingest", "map", "--format", "asterisk-csv", csv]) == 0
    assert "every tenant's numbers are read as numbers of NL" in capsys.readouterr().err


def test_map_piped_into_explain(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ami = str(FIXTURES / "ami" / "ru_h323_cdr_manager.txt")
    assert main(["ingest", "map", "--format", "asterisk-ami", ami]) == 0
    mapped = capsys.readouterr().out.encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(mapped), encoding="utf-8"))
    assert main(["explain", "--now", "2018-09-08T00:00:00Z", "--retention-days", "3"]) == 0
    out = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(o["source"], o["outcome"]) for o in out] == [
        (f"{ami}:0", "stored"),
        (f"{ami}:2", "stored"),
        (f"{ami}:4", "stored"),
        (f"{ami}:6", "skipped"),
    ]
    assert out[1]["record"]["destination"] == "+78007757800"
    assert out[3]["reason"] == "dialled_leg"
