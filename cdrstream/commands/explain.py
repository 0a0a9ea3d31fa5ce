"""`cdrstream explain`: what the rules make of each event, without Kafka or Redis.

Reads call-ended events from stdin, one JSON value per line, and prints one JSON line per
input line: ``event_id``, ``outcome``, ``reason``, ``record`` (contract §3, §4, §6).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

EPILOG = """\
Every input line gives exactly one output line, in order: an empty or non-JSON line is
"invalid" with reason "not_json". "duplicate" never appears here: it needs the store.
A line of `cdrstream ingest map` ({"source", "events", ...}) gives one line per event, each
with its "source"; one without events gives one line whose outcome is "skipped" or
"rejected" (by the adapter), so `cdrstream ingest map ... | cdrstream explain` works.
The default region, the display zone of "started_at_local" and the tenants file come from
CDRSTREAM_DEFAULT_REGION, CDRSTREAM_DISPLAY_TZ and CDRSTREAM_TENANTS_FILE.
"""


def _now_ms(text: str) -> int:
    from cdrstream.core.timestamps import parse_timestamp

    value = text.strip()
    ms = parse_timestamp(int(value) if value.isascii() and value.isdigit() else value)
    if ms is None:
        raise argparse.ArgumentTypeError(
            f"not an RFC 3339 time with offset (e.g. 2026-11-25T09:14:03+01:00) "
            f"or epoch milliseconds in 2000-2100: {text!r}"
        )
    return ms


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = -1
    if days < 1:
        raise argparse.ArgumentTypeError(f"a whole number of days >= 1: {text!r}")
    return days


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--now",
        type=_now_ms,
        metavar="T",
        help="the time to judge expiry against: RFC 3339 or epoch ms (default: now)",
    )
    parser.add_argument(
        "--retention-days",
        type=_days,
        metavar="N",
        help="days of calls kept (default: CDRSTREAM_RETENTION_DAYS)",
    )


def run(args: argparse.Namespace) -> int:
    import sys
    import zoneinfo

    import orjson

    from cdrstream.core import clock
    from cdrstream.core.clock import DAY_MS
    from cdrstream.core.outcome import Policy, decide
    from cdrstream.core.record_view import record_to_dict
    from cdrstream.settings import load_settings
    from cdrstream.tenant_profiles import TenantProfilesError, load_tenant_profiles

    settings = load_settings()
    try:
        display_tz = zoneinfo.ZoneInfo(settings.display_tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        print(f"cdrstream explain: unknown display zone {settings.display_tz!r}", file=sys.stderr)
        return 2
    try:
        tenants = load_tenant_profiles(settings.tenants_file)
    except TenantProfilesError as exc:
        print(f"cdrstream explain: {exc}", file=sys.stderr)
        return 2
    retention_days = args.retention_days or settings.retention_days
    policy = Policy(
        retention_ms=retention_days * DAY_MS,
        default_region=settings.default_region,
        tenants=tenants,
    )
    now_ms = args.now if args.now is not None else clock.now_ms()

    write = sys.stdout.write
    for line in _stdin_lines():
        source, lines, adapter_result = _map_line(line)
        if adapter_result is not None:
            write(orjson.dumps({"source": source, **adapter_result}).decode() + "\n")
        for event_line in lines:
            decision = decide(event_line, now_ms, policy)
            result = {
                "event_id": decision.event_id,
                "outcome": decision.outcome,
                "reason": decision.reason,
                "record": None
                if decision.record is None
                else record_to_dict(decision.record, display_tz),
            }
            if source is not None:
                result = {"source": source, **result}
            write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
    return 0


def _map_line(line: bytes) -> tuple[str | None, list[bytes], dict[str, object] | None]:
    """(source, event lines, adapter outcome) of a `cdrstream ingest map` line; any other
    line is one event line as it is."""
    import orjson

    if not line.startswith(b'{"source"'):
        return None, [line], None
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, [line], None
    events = item.get("events") if isinstance(item, dict) else None
    if not isinstance(events, list) or not isinstance(item.get("source"), str):
        return None, [line], None
    lines = [orjson.dumps(event) for event in events]
    if lines:
        return item["source"], lines, None
    rejected = item.get("rejected")
    outcome: dict[str, object]
    if isinstance(rejected, dict):
        outcome = {"event_id": None, "outcome": "rejected", "reason": rejected, "record": None}
    else:
        outcome = {"event_id": None, "outcome": "skipped", "reason": item.get("skipped")}
        outcome["record"] = None
    return item["source"], [], outcome


def _stdin_lines() -> Iterator[bytes]:
    """Each stdin line as bytes, without its line ending (the last line may lack one)."""
    import sys

    stream = getattr(sys.stdin, "buffer", None)
    if stream is not None:
        for line in stream:
            yield line.rstrip(b"\r\n")
    else:  # a text stream without a binary buffer (e.g. io.StringIO in tests)
        for text in sys.stdin:
            yield text.rstrip("\r\n").encode("utf-8", "surrogateescape")
