"""`cdrstream ingest map --format freeswitch|asterisk-csv|asterisk-ami FILE...`: the adapters'
mapping of CDR files, printed as JSON lines, nothing produced (docs/adapters/).

Also builds the adapters' configuration from the settings, the same for ``map`` as for the
ingest commands (`adapter_configs`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cdrstream.ingest.asterisk_cdr import AsteriskConfig
    from cdrstream.ingest.freeswitch_cdr import FreeswitchConfig
    from cdrstream.settings import Settings

FORMATS = ("freeswitch", "asterisk-csv", "asterisk-ami")

EPILOG = """\
One JSON line per CDR (FreeSWITCH: one document per file) or per chain of Asterisk CDRs:
{"source": "<file>:<line or index>", "events": [...], "skipped": <reason|null>,
 "rejected": {"field", "reason"}|null}. The settings are the ingest commands' own
(CDRSTREAM_ASTERISK_*, CDRSTREAM_INGEST_*, CDRSTREAM_*_TENANT_SOURCES, CDRSTREAM_TENANTS_FILE).
See the records the rules would make:

  cdrstream ingest map --format asterisk-csv Master.csv | cdrstream explain

Exit status: 0 when every file was read (skips and refusals included), 2 when one cannot be.
"""


def configure_map(sources: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sources.add_parser(
        "map",
        help="preview: what the adapters make of CDR files (JSON lines; nothing produced)",
        description="Read CDRs from files and print what the adapters would produce.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--format", required=True, choices=FORMATS, dest="cdr_format")
    parser.add_argument("files", nargs="+", metavar="FILE")


def _words(text: str) -> frozenset[str]:
    return frozenset(word.strip() for word in text.split(",") if word.strip())


def _sources(text: str, known: tuple[str, ...], name: str) -> tuple[str, ...] | str:
    words = tuple(word.strip() for word in text.split(",") if word.strip())
    unknown = [word for word in words if word not in known]
    if unknown:
        return f"{name}: unknown tenant sources {unknown} (known: {', '.join(known)})"
    return words


def adapter_configs(
    settings: Settings,
) -> tuple[FreeswitchConfig, AsteriskConfig, list[str]] | str:
    """The adapters' configurations and the start warnings, or what is wrong with the
    settings (one line, for stderr)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from cdrstream.ingest import asterisk_cdr, freeswitch_cdr
    from cdrstream.ingest.pbx_tenants import load_pbx_tenants, region_warnings
    from cdrstream.tenant_profiles import TenantProfilesError

    try:
        zone = ZoneInfo(settings.asterisk_tz)
    except (ZoneInfoNotFoundError, ValueError):
        return f"CDRSTREAM_ASTERISK_TZ: not an IANA zone: {settings.asterisk_tz!r}"
    try:
        tenants = load_pbx_tenants(settings.tenants_file)
    except TenantProfilesError as exc:
        return f"CDRSTREAM_TENANTS_FILE: {exc}"
    fs_sources = _sources(
        settings.freeswitch_tenant_sources,
        freeswitch_cdr.TENANT_SOURCES,
        "CDRSTREAM_FREESWITCH_TENANT_SOURCES",
    )
    ast_sources = _sources(
        settings.asterisk_tenant_sources,
        asterisk_cdr.TENANT_SOURCES,
        "CDRSTREAM_ASTERISK_TENANT_SOURCES",
    )
    for checked in (fs_sources, ast_sources):
        if isinstance(checked, str):
            return checked
    assert not isinstance(fs_sources, str) and not isinstance(ast_sources, str)
    fs_config = freeswitch_cdr.FreeswitchConfig(
        tenant_variable=settings.ingest_tenant_variable,
        default_tenant=settings.ingest_default_tenant,
        trunk_profiles=_words(settings.ingest_trunk_profiles),
        tenant_sources=fs_sources,
        tenants=tenants,
    )
    ast_config = asterisk_cdr.AsteriskConfig(
        zone=zone,
        trunks=_words(settings.asterisk_trunks),
        default_tenant=settings.ingest_default_tenant,
        tenant_sources=ast_sources,
        tenants=tenants,
    )
    warnings = region_warnings(tenants, settings.default_region, settings.tenants_file)
    return fs_config, ast_config, warnings


def run_map(
    args: argparse.Namespace,
    fs_config: FreeswitchConfig,
    ast_config: AsteriskConfig,
    warnings: list[str],
) -> int:
    import sys
    from pathlib import Path

    import orjson

    from cdrstream.ingest.preview import (
        preview_asterisk_ami,
        preview_asterisk_csv,
        preview_freeswitch,
    )

    for warning in warnings:
        print(f"cdrstream ingest map: {warning}", file=sys.stderr)
    status = 0
    for name in args.files:
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            print(f"cdrstream ingest map: {name}: cannot read: {exc.strerror}", file=sys.stderr)
            status = 2
            continue
        if args.cdr_format == "freeswitch":
            previews = [preview_freeswitch(name, data, fs_config)]
        elif args.cdr_format == "asterisk-csv":
            previews = preview_asterisk_csv(name, data, ast_config)
        else:
            previews = preview_asterisk_ami(name, data, ast_config)
        for item in previews:
            sys.stdout.write(orjson.dumps(item).decode() + "\n")
    sys.stdout.flush()
    return status
