"""Query parameters: what is accepted, and every 400 names its parameter."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdrstream.api.csv_export import CSV_COLUMNS, CsvFormatter
from cdrstream.api.params import (
    CDRS_PARAMS,
    DEFAULT_LIMIT,
    LIVE_PARAMS,
    CdrsRequest,
    InvalidParam,
    ParseContext,
    choose_format,
    parse_cdrs_params,
    parse_params,
)
from cdrstream.core.numbers import normalize_query_number
from cdrstream.core.record import CallRecord
from cdrstream.core.record_view import FIELDS, RecordView
from cdrstream.core.timestamps import format_local, format_utc
from cdrstream.store.reader import RecordQuery
from tests.unit.test_csv_rows import defused

AMSTERDAM = ZoneInfo("Europe/Amsterdam")

NL = ParseContext(
    normalize_number=lambda text: normalize_query_number(text, "NL"), masked_numbers=False
)
MASKED_NL = ParseContext(
    normalize_number=lambda text: normalize_query_number(text, "NL"), masked_numbers=True
)


def parse(query: str) -> CdrsRequest | list[InvalidParam]:
    items = [tuple(part.split("=", 1)) if "=" in part else (part, "") for part in query.split("&")]
    return parse_cdrs_params([(k, v) for k, v in items if k or v], NL)  # type: ignore[misc]


def ok(query: str) -> CdrsRequest:
    result = parse(query)
    assert isinstance(result, CdrsRequest), result
    return result


def test_defaults() -> None:
    request = ok("")
    assert request == CdrsRequest(
        query=RecordQuery(), limit=DEFAULT_LIMIT, cursor=None, format=None
    )


def test_every_filter() -> None:
    request = ok(
        "from=2026-11-25T09:00:00+01:00&to=2026-11-25T08:30:00.5Z&direction=outbound"
        "&extension=201&number=020 123&limit=1000&cursor=abc&format=csv"
    )
    assert request.query == RecordQuery(
        from_ms=1_795_593_600_000,  # 2026-11-25T08:00:00Z
        to_ms=1_795_595_400_501,  # inclusive: the store's bound is exclusive
        direction="outbound",
        extension="201",
        number_prefix="+3120123",
    )
    assert (request.limit, request.cursor, request.format) == (1000, "abc", "csv")


def test_times_convert_offsets_to_utc_ms() -> None:
    a = ok("from=2026-11-25T09:14:03.120+01:00").query.from_ms
    b = ok("from=2026-11-25T08:14:03.120Z").query.from_ms
    c = ok("from=2026-11-25T03:14:03.120-05:00").query.from_ms
    assert a == b == c == 1_795_594_443_120


def test_empty_values_mean_absent() -> None:
    assert ok("from=&to=&direction=&extension=&number=&limit=&cursor=&format=") == ok("")


def test_from_equal_to_is_one_millisecond() -> None:
    request = ok("from=2026-11-25T08:00:00Z&to=2026-11-25T09:00:00+01:00")
    assert request.query.to_ms == request.query.from_ms + 1  # type: ignore[operator]


def test_times_outside_the_store_range_are_passed_on_for_the_store_to_clamp() -> None:
    """The store's reader is the one place that clamps times to what it can hold (the API
    test ``test_times_far_outside_the_window_are_clamped_by_the_store`` reads them)."""
    query = ok("from=0001-01-01T00:00:00Z&to=0001-01-02T00:00:00+14:00").query
    assert query.from_ms == -62_135_596_800_000
    assert query.to_ms == -62_135_560_800_000 + 1
    query = ok("to=9999-12-31T23:59:59.999-23:59").query
    assert query.to_ms == 253_402_387_139_999 + 1


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("from=yesterday", "from"),
        ("from=2026-11-25", "from"),
        ("from=2026-11-25T08:00:00", "from"),  # no offset: not an instant
        ("from=2026-13-25T08:00:00Z", "from"),
        ("from=2026-02-30T08:00:00Z", "from"),
        ("from=2026-11-25T24:00:00Z", "from"),
        ("from=2026-11-25T08:00:00+25:00", "from"),
        ("from=1764058443120", "from"),
        ("to=2026-11-25T08:00:00 Z", "to"),
        ("to=" + "2" * 100, "to"),
        ("from=2026-11-25T09:00:00Z&to=2026-11-25T08:00:00Z", "from"),
        ("direction=internal", "direction"),
        ("direction=Inbound", "direction"),
        ("direction=in", "direction"),
        ("extension=%01", "extension"),
        ("extension=" + "1" * 65, "extension"),
        ("number=abc", "number"),
        ("number=+", "number"),
        ("number=" + "1" * 65, "number"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=+5", "limit"),
        ("limit=1.5", "limit"),
        ("limit=ten", "limit"),
        ("limit= 5", "limit"),
        ("limit=1_000", "limit"),
        ("limit=\u0665", "limit"),  # an Arabic-Indic five: int() would take it
        ("limit=99999999999999999999", "limit"),
        ("cursor=" + "c" * 513, "cursor"),
        ("cursor=caf\u00e9", "cursor"),
        ("format=xml", "format"),
        ("format=CSV", "format"),
        ("diretion=inbound", "diretion"),
        ("tenant_id=t1", "tenant_id"),
        ("direction=inbound&direction=outbound", "direction"),
        ("limit=5&limit=5", "limit"),
    ],
)
def test_bad_parameter_is_named(query: str, name: str) -> None:
    query = query.replace("%01", "\x01")
    result = parse(query)
    assert isinstance(result, list), result
    assert name in {p.name for p in result}
    assert all(p.reason for p in result)


def test_every_problem_is_reported_at_once() -> None:
    result = parse("direction=x&limit=0&format=pdf&from=no")
    assert isinstance(result, list)
    assert {p.name for p in result} == {"direction", "limit", "format", "from"}


def test_unknown_names_are_echoed_bounded_and_printable() -> None:
    result = parse_cdrs_params([("\x00bad" + "x" * 200, "1")], NL)
    assert isinstance(result, list)
    [problem] = result
    assert problem.name.startswith("?bad") and problem.name.endswith("...")
    assert len(problem.name) <= 67


@pytest.mark.parametrize(
    ("typed", "prefix"),
    [
        ("+31 20 123 4567", "+31201234567"),
        ("020-1234567", "+31201234567"),
        ("+3120", "+3120"),
        ("06 12", "+31612"),
    ],
)
def test_number_is_normalized_with_the_region(typed: str, prefix: str) -> None:
    assert ok(f"number={typed}").query.number_prefix == prefix


def test_number_uses_the_context_region() -> None:
    be = ParseContext(
        normalize_number=lambda text: normalize_query_number(text, "BE"), masked_numbers=False
    )
    result = parse_cdrs_params([("number", "02 123")], be)
    assert isinstance(result, CdrsRequest)
    assert result.query.number_prefix == "+322123"


def test_every_defined_parameter_is_accepted_with_its_example() -> None:
    for spec in CDRS_PARAMS:
        if spec.example:
            result = parse_cdrs_params([(spec.name, spec.example)], NL)
            assert isinstance(result, CdrsRequest), (spec.name, result)


@given(st.lists(st.tuples(st.text(max_size=20), st.text(max_size=80)), max_size=8))
def test_parser_never_raises(items: list[tuple[str, str]]) -> None:
    result = parse_cdrs_params(items, NL)
    if isinstance(result, list):
        assert result and all(p.name is not None and p.reason for p in result)


@pytest.mark.parametrize(
    ("fmt", "accept", "expected"),
    [
        (None, None, "json"),
        (None, "", "json"),
        (None, "*/*", "json"),
        (None, "application/json", "json"),
        (None, "text/csv", "csv"),
        (None, "text/csv;q=0.9, application/json;q=0.5", "csv"),
        (None, "application/json, text/csv", "json"),  # a tie goes to JSON
        (None, "text/csv;q=0.4, application/json;q=0.5", "json"),
        (None, "text/html,application/xhtml+xml,*/*;q=0.8", "json"),
        (None, "text/csv;q=bogus", "json"),
        (None, "text/csv;q=nan", "json"),
        ("json", "text/csv", "json"),
        ("csv", "application/json", "csv"),
    ],
)
def test_choose_format(fmt: str | None, accept: str | None, expected: str) -> None:
    assert choose_format(fmt, accept) == expected  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- OpenAPI
# The document is built from the same ParamSpec objects the parser uses; these tests also
# hold the routes the server registers against the document, in both directions.


def _registered_routes() -> set[tuple[str, str]]:
    import re

    from cdrstream.api.app import create_api_app
    from cdrstream.settings import load_settings

    app = create_api_app(load_settings({}), redis=None, cursor_secret=b"k")
    routes = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        routes.add((route.method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)))
    return routes


def test_openapi_documents_exactly_the_registered_routes() -> None:
    from cdrstream.api.openapi import openapi_document

    document = openapi_document()
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert documented == _registered_routes()


def test_openapi_parameters_are_the_parser_parameters() -> None:
    from cdrstream.api.openapi import openapi_document

    operation = openapi_document()["paths"]["/v1/tenants/{tenant_id}/cdrs"]["get"]
    documented = {(p["name"], p["in"]) for p in operation["parameters"]}
    assert documented == {("tenant_id", "path")} | {(p.name, "query") for p in CDRS_PARAMS}
    # ... and any other query parameter is refused by the parser
    for name, _ in documented:
        if name != "tenant_id":
            assert not isinstance(parse_cdrs_params([(name, "")], NL), list)
    assert isinstance(parse_cdrs_params([("undocumented", "1")], NL), list)
    # the limits in the document are the parser's limits
    schemas = {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "query"}
    for schema in schemas.values():  # every value may be empty (read as absent)
        assert {"const": ""} in schema["anyOf"]
    limit = schemas["limit"]["anyOf"][0]
    assert ok(f"limit={limit['maximum']}").limit == limit["maximum"]
    assert isinstance(parse(f"limit={limit['maximum'] + 1}"), list)
    assert isinstance(parse(f"limit={limit['minimum'] - 1}"), list)
    direction = schemas["direction"]["anyOf"][0]
    for value in direction["enum"]:
        assert ok(f"direction={value}").query.direction == value


def test_openapi_record_schema_lists_the_record_fields() -> None:
    from cdrstream.api.openapi import openapi_document
    from cdrstream.core.record_view import RECORD_FIELDS

    schema = openapi_document()["components"]["schemas"]["Record"]
    assert tuple(schema["properties"]) == RECORD_FIELDS


# ------------------------------------------------------------------------------- masked tokens
# A token with masked numbers may give `number` only as one whole country code: the mask
# shows the country code anyway, and anything longer would answer "is there a call to a
# number that starts like this?", digit by digit. Decided before Redis is read, so the
# answer cannot depend on the data.

FULL_NUMBER = "+31201234567"


@pytest.mark.parametrize(
    ("typed", "country_code"),
    [("+31", "+31"), ("0031", "+31"), ("31", "+31"), ("+ 31", "+31"), ("+1", "+1"),
     ("+358", "+358"), ("00 44", "+44"), ("\uff0b\uff13\uff12", "+32"),
     ("0", "+31")],  # the national prefix alone: every number of the tenant's country
)  # fmt: skip
def test_a_masked_token_may_filter_by_a_whole_country_code(typed: str, country_code: str) -> None:
    result = parse_cdrs_params([("number", typed)], MASKED_NL)
    assert isinstance(result, CdrsRequest), result
    assert result.query.number_prefix == country_code


def _refused_for_masked(typed: str) -> None:
    result = parse_cdrs_params([("number", typed)], MASKED_NL)
    assert isinstance(result, list), (typed, result)
    assert [p.name for p in result] == ["number"], typed
    # The reason never echoes what was typed.
    digits = "".join(c for c in typed if c.isdigit())
    assert len(digits) < 4 or digits not in result[0].reason


def test_a_masked_token_cannot_grow_a_prefix_digit_by_digit() -> None:
    accepted = []
    for end in range(2, len(FULL_NUMBER) + 1):
        prefix = FULL_NUMBER[:end]
        if isinstance(parse_cdrs_params([("number", prefix)], MASKED_NL), CdrsRequest):
            accepted.append(prefix)
        else:
            _refused_for_masked(prefix)
    assert accepted == ["+31"]  # "+3" is no country code; "+312" says more than the mask


@pytest.mark.parametrize(
    "typed",
    [
        FULL_NUMBER,
        "+31 20 123 4567",
        "+31 (0)20 123 4567",
        "0031201234567",
        "00 31 20 1234567",
        "31201234567",
        "020 123 4567",
        "020-1234567",
        "0201234567",
        "201234567",
        "06",
        "0612345678",
        "tel:+31201234567",
        "sip:+31201234567@pbx.example",
        '"Bob" <sip:0201234567@pbx.example>',
        "+31201234567;ext=12",
        "+31 20 123 4567 ext. 12",
        "\uff0b\uff13\uff11\uff12\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # fullwidth
        "+3\u200b1\u200b2\u200b0",  # zero-width spaces
        "+\u0663\u0661\u0662\u0660",  # Arabic-Indic digits
        "+3120",
        "+312",
        "+3",
        "+999",  # no country code: nothing the mask shows
        "+",
        "%2B31201234567",  # encoded once more than the transport does: not a number
        "*31#0201234567",  # CLIR prefix
    ],
)
def test_a_masked_token_cannot_name_more_than_a_country_code(typed: str) -> None:
    _refused_for_masked(typed)


def test_the_masked_refusal_does_not_depend_on_the_number() -> None:
    """Whatever longer number is typed, the same answer: nothing to compare."""
    reasons = set()
    for typed in ("+31201234567", "+31209999999", "+3120", "020 123", "+4420794600"):
        result = parse_cdrs_params([("number", typed)], MASKED_NL)
        assert isinstance(result, list)
        reasons.add(tuple(tuple(p.to_json().items()) for p in result))
    assert len(reasons) == 1


def test_the_same_values_are_fine_for_a_full_token() -> None:
    for typed in (FULL_NUMBER, "020 123", "+3120", "06"):
        assert isinstance(parse_cdrs_params([("number", typed)], NL), CdrsRequest)


@given(st.text(max_size=30))
def test_whatever_a_masked_token_types_it_filters_by_a_country_code_at_most(typed: str) -> None:
    from cdrstream.core.masking import is_country_code

    result = parse_cdrs_params([("number", typed)], MASKED_NL)
    if isinstance(result, CdrsRequest) and result.query.number_prefix is not None:
        assert is_country_code(result.query.number_prefix), (typed, result)


@pytest.mark.parametrize(
    "typed",
    ["+31612345678", "0612345678", "06-1234 5678", "1234567", "+31687654321@pbx",
     "\uff10\uff16\uff11\uff12\uff13\uff14\uff15\uff16\uff17", "0612\u200b345678"],
)  # fmt: skip
def test_a_masked_token_cannot_filter_by_an_extension_that_holds_a_number(typed: str) -> None:
    """Such an extension is served masked: the filter must not confirm a guessed number."""
    for params in (CDRS_PARAMS, LIVE_PARAMS):
        result = parse_params([("extension", typed)], params, MASKED_NL)
        assert isinstance(result, list), (typed, result)
        assert [p.name for p in result] == ["extension"]
        assert "masked" in result[0].reason and typed not in result[0].reason
        full = parse_params([("extension", typed)], params, NL)
        assert full == {"extension": typed}


@pytest.mark.parametrize("typed", ["201", "0", "123456", "*97", "sales 2"])
def test_a_masked_token_may_filter_by_an_extension(typed: str) -> None:
    assert parse_params([("extension", typed)], CDRS_PARAMS, MASKED_NL) == {"extension": typed}


@given(st.text(min_size=1, max_size=64))
def test_a_masked_token_filters_by_no_extension_it_is_served_masked(typed: str) -> None:
    from cdrstream.core.masking import mask_text

    result = parse_params([("extension", typed)], CDRS_PARAMS, MASKED_NL)
    if isinstance(result, dict):
        assert mask_text(typed) == typed  # served as it is: nothing hidden to confirm


# ------------------------------------------------------------------------------- CSV rows


def _record(**changes: object) -> CallRecord:
    base = CallRecord(
        id="-abc",
        tenant_id="t",
        call_id='a"b,c\r\nd',
        started_at_ms=1_795_594_443_120,
        answered_at_ms=None,
        ended_at_ms=1_795_594_453_120,
        duration=0,
        source="+31201234567",
        source_raw='=HYPERLINK("http://x")',
        destination="@SUM(1)",
        destination_raw="\tx",
        extension="\r=1",
        direction="inbound",
        disposition=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _csv(view: RecordView, records: list[CallRecord]) -> list[dict[str, str]]:
    formatter = CsvFormatter(view)
    text = formatter.header() + formatter.rows(records)
    assert text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    return [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]


def _expected_csv(view: RecordView, record: CallRecord) -> dict[str, str]:
    """What the one definition of the fields says a CSV row of ``record`` holds: the JSON
    view's values, each time in UTC and in the display zone, text defused."""
    shown = view.to_dict(record)
    out: dict[str, str] = {}
    for f in FIELDS:
        if f.kind == "time":
            ms = getattr(record, f.attribute)
            out[f"{f.name}_utc"] = "" if ms is None else format_utc(ms)
            out[f"{f.name}_local"] = "" if ms is None else format_local(ms, view.display_tz)
            assert shown[f.name] == (out[f"{f.name}_utc"] or None)
        else:
            value = shown[f.name]
            text = "" if value is None else str(value)
            out[f.name] = defused(text)
    return out


@pytest.mark.parametrize("masked", [False, True])
def test_csv_rows_hold_the_json_view_of_each_record(masked: bool) -> None:
    view = RecordView(AMSTERDAM, masked_numbers=masked)
    records = [
        _record(),
        _record(disposition="odd,", answered_at_ms=1_795_594_445_000, duration=8),
        _record(source="anonymous", source_raw="", destination="+3224567890", direction="outbound"),
        _record(source="201", destination="+12125551234", destination_raw="1 212 555 1234"),
    ]
    rows = _csv(view, records)
    assert rows == [_expected_csv(view, r) for r in records]


def test_csv_row_quotes_and_defuses_text() -> None:
    record = _record()
    odd = _record(disposition="odd,", answered_at_ms=1_795_594_445_000)
    rows = _csv(RecordView(AMSTERDAM, masked_numbers=False), [record, record, odd])
    assert rows[0] == rows[1]
    row = rows[0]
    assert row["id"] == "'-abc"
    assert row["call_id"] == 'a"b,c\r\nd'
    assert row["source"] == "'+31201234567"
    assert row["source_raw"] == '\'=HYPERLINK("http://x")'
    assert row["destination"] == "'@SUM(1)"
    assert row["destination_raw"] == "'\tx"
    assert row["answered_at_utc"] == row["answered_at_local"] == ""
    assert row["started_at_utc"] == "2026-11-25T08:14:03.120Z"
    assert row["started_at_local"] == "2026-11-25T09:14:03.120+01:00"
    assert row["extension"] == "'\r=1"
    assert row["disposition"] == ""
    row = rows[2]
    assert row["disposition"] == "odd,"
    assert row["answered_at_utc"] == "2026-11-25T08:14:05.000Z"
    assert row["answered_at_local"] == "2026-11-25T09:14:05.000+01:00"
    assert len(rows) == 3


def test_csv_of_a_masked_view_keeps_the_columns_and_withholds_the_raw_numbers() -> None:
    record = _record(
        source_raw="020 123 4567",
        destination="+3224567890",
        destination_raw="x",
        call_id="+31687654321@pbx",
        extension="+31612345678",
        disposition="0612345699",
    )
    [row] = _csv(RecordView(AMSTERDAM, masked_numbers=True), [record])
    assert row["source"] == "'+31 \u2022\u2022\u2022 4567"
    assert row["destination"] == "'+32 \u2022\u2022\u2022 890"
    assert row["source_raw"] == row["destination_raw"] == row["call_id"] == ""
    assert row["extension"] == "'+31 \u2022\u2022\u2022 5678"
    assert row["disposition"] == "\u2022\u2022\u2022"
    text = ",".join(row.values())
    for digits in ("1234567", "8765432", "2345699"):
        assert digits not in text


@given(st.integers(min_value=946_684_800_000, max_value=4_133_980_799_999))
def test_csv_times_match_the_record_formats(ms: int) -> None:
    for zone in ("Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"):
        view = RecordView(ZoneInfo(zone), masked_numbers=False)
        record = _record(started_at_ms=ms, answered_at_ms=ms + 1, ended_at_ms=ms + 61_001)
        [row] = _csv(view, [record])
        assert row == _expected_csv(view, record)


def test_csv_times_across_a_dst_change() -> None:
    view = RecordView(AMSTERDAM, masked_numbers=False)
    change = 1_774_746_000_000  # 2026-03-29T01:00:00Z: CET -> CEST
    records = [
        _record(started_at_ms=ms, ended_at_ms=ms)
        for ms in range(change - 1_800_000, change + 1_800_000, 29_999)
    ]
    for row, record in zip(_csv(view, records), records, strict=True):
        assert row["started_at_local"] == format_local(record.started_at_ms, AMSTERDAM)


# ------------------------------------------------------------------------------- tenant id


def test_the_page_checks_tenant_ids_with_the_core_pattern() -> None:
    """The page cannot import Python: its two copies of the pattern are held to the core's."""
    import re
    from importlib import resources

    from cdrstream.core.event import TENANT_ID

    static = resources.files("cdrstream.api") / "static"
    script = (static / "app.js").read_text()
    page = (static / "index.html").read_text()
    [js] = re.findall(r"const TENANT_RE = /\^(.*?)\$/;", script)
    [html] = re.findall(r'id="tenant"[^>]*pattern="([^"]*)"', page)
    assert js == TENANT_ID.pattern
    assert html.replace("\\-", "-") == TENANT_ID.pattern


# ------------------------------------------------------------------------------- problems


def test_a_parameter_given_many_times_is_one_problem() -> None:
    result = parse_cdrs_params([("limit", "1")] * 400 + [("x", "1")] * 400, NL)
    assert result == [
        InvalidParam("limit", "given more than once"),
        InvalidParam("x", "unknown parameter"),
    ]


def test_a_problem_lists_at_most_ten_parameters_and_counts_the_rest() -> None:
    import orjson

    from cdrstream.api.problems import bad_request

    result = parse_cdrs_params([(f"x{n}", "1") for n in range(400)], NL)
    assert isinstance(result, list) and len(result) == 400
    response = bad_request(result)
    assert isinstance(response.body, bytes) and len(response.body) < 1_500
    body = orjson.loads(response.body)
    assert [p["name"] for p in body["invalid_params"]] == [f"x{n}" for n in range(10)]
    assert body["invalid_params_omitted"] == 390
    assert (
        body["detail"] == "invalid parameter(s): x0, x1, x2, x3, x4, x5, x6, x7, x8, x9 "
        "and 390 more"
    )
    few = orjson.loads(bad_request(result[:10]).body)  # type: ignore[arg-type]
    assert len(few["invalid_params"]) == 10 and "invalid_params_omitted" not in few
