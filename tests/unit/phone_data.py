"""libphonenumber's own data for the number tests: every region it knows, and every emergency
number of each (its short-number emergency patterns expanded exactly, plus
`cdrstream.core.emergency.SUPPLEMENT`)."""

from __future__ import annotations

import itertools
import re._constants as sre_constants
import re._parser as sre_parser
from typing import Any

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata

from cdrstream.core.emergency import SUPPLEMENT


def expand(pattern: str) -> set[str]:
    """Every string a finite libphonenumber pattern matches (digits, classes, ``\\d``,
    alternations, groups, bounded repeats: all its short-number patterns use)."""

    def chars(items: list[tuple[Any, Any]]) -> list[str]:
        out: set[str] = set()
        for op, av in items:
            if op is sre_constants.LITERAL:
                out.add(chr(av))
            elif op is sre_constants.RANGE:
                out.update(chr(c) for c in range(av[0], av[1] + 1))
            elif op is sre_constants.CATEGORY and av is sre_constants.CATEGORY_DIGIT:
                out.update("0123456789")
            else:
                raise ValueError(f"unsupported class item {op} in {pattern}")
        return sorted(out)

    def sequence(items: Any) -> list[str]:
        results = [""]
        for op, av in items:
            results = [head + tail for head in results for tail in node(op, av)]
        return results

    def node(op: Any, av: Any) -> list[str]:
        if op is sre_constants.LITERAL:
            return [chr(av)]
        if op is sre_constants.IN:
            return chars(av)
        if op is sre_constants.CATEGORY and av is sre_constants.CATEGORY_DIGIT:
            return list("0123456789")
        if op is sre_constants.SUBPATTERN:
            return sequence(av[-1])
        if op is sre_constants.BRANCH:
            return [s for branch in av[1] for s in sequence(branch)]
        if op is sre_constants.MAX_REPEAT:
            low, high, sub = av
            base = sequence(sub)
            return [
                "".join(parts)
                for count in range(low, high + 1)
                for parts in itertools.product(base, repeat=count)
            ]
        raise ValueError(f"unsupported pattern node {op} in {pattern}")

    return set(sequence(sre_parser.parse(pattern)))


def emergency_pattern(region: str) -> str | None:
    metadata = PhoneMetadata.short_metadata_for_region(region)
    desc = metadata.emergency if metadata is not None else None
    return desc.national_number_pattern if desc is not None else None


def _emergency_numbers() -> list[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for region in set(phonenumbers.SUPPORTED_REGIONS) | set(phonenumbers.SUPPORTED_SHORT_REGIONS):
        pattern = emergency_pattern(region)
        if pattern:
            pairs.update((region, number) for number in expand(pattern))
        pairs.update((region, number) for number in SUPPLEMENT.get(region, ()))
    return sorted(pairs)


EMERGENCY = _emergency_numbers()
ALL_REGIONS = sorted(
    set(phonenumbers.SUPPORTED_REGIONS) | set(phonenumbers.SUPPORTED_SHORT_REGIONS)
)
