"""`cdrstream normalize`: how the rules read A/B numbers, one JSON line per number.

Output keys: ``raw``, ``region``, ``e164`` (null when there is none), ``class``: one of
``pstn``, ``emergency``, ``social_value``, ``withheld``, ``invalid`` (contract §6).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

EPILOG = """\
Numbers come from the arguments, or one per stdin line when there are none (empty stdin
lines are skipped; pass "" as an argument to see how an empty caller reads).

"class" is one of pstn, emergency, social_value, withheld, invalid. A number libphonenumber
calls possible but not valid (right length, unassigned range) is "pstn" with its E.164 form.
The rules also know a sixth class, the tenant's own extensions (1-6 digits such as 201, and
PBX feature codes such as *97); this command's contract has no class for them, so they are
reported as "invalid" with "e164": null: they are not PSTN numbers and never become one.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--region",
        help="ISO 3166 alpha-2 region the number is dialled in (default: CDRSTREAM_DEFAULT_REGION)",
    )
    parser.add_argument(
        "--outside-line",
        default="",
        metavar="DIGITS",
        help='the tenant\'s outside-line prefix, e.g. "0" or "9" (default: none)',
    )
    parser.add_argument("raw", nargs="*", metavar="RAW", help="numbers as a PBX wrote them")


def run(args: argparse.Namespace) -> int:
    import sys

    import orjson
    import phonenumbers

    from cdrstream.core.numbers import normalize_number

    region = args.region
    if region is None:
        from cdrstream.settings import load_settings

        region = load_settings().default_region
    region = region.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        print(f"cdrstream normalize: unknown region {args.region!r}", file=sys.stderr)
        return 2
    outside_line = args.outside_line.strip()
    if not (outside_line == "" or (outside_line.isascii() and outside_line.isdigit())):
        print("cdrstream normalize: --outside-line must be digits", file=sys.stderr)
        return 2

    write = sys.stdout.write
    for raw in args.raw or _stdin_numbers():
        number = normalize_number(raw, region, outside_line)
        number_class = "invalid" if number.number_class == "extension" else number.number_class
        line = {"raw": raw, "region": region, "e164": number.e164, "class": number_class}
        write(orjson.dumps(line).decode() + "\n")
    sys.stdout.flush()
    return 0


def _stdin_numbers() -> Iterator[str]:
    """One raw number per stdin line, read as bytes (bad UTF-8 becomes U+FFFD, no crash)."""
    import sys

    stream = getattr(sys.stdin, "buffer", None)
    lines = (
        (line.decode("utf-8", "replace") for line in stream) if stream is not None else sys.stdin
    )
    for line in lines:
        raw = line.rstrip("\r\n")
        if raw:
            yield raw
