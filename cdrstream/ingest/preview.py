"""`cdrstream ingest map`: what the adapters make of CDRs read from files (pure; no Kafka).

One preview per input CDR (FreeSWITCH: one JSON document per file) or per chain of Asterisk
CDRs (consecutive ``Master.csv`` rows or ``Event: Cdr`` blocks of one call), each a dict::

    {"source": "<file>:<line or index>", "events": [<call-ended event>, ...],
     "skipped": <reason> | None, "rejected": {"field": ..., "reason": ...} | None}

``source`` names the file and, for Asterisk, the first line (CSV, from 1) or the index of
the first ``Event: Cdr`` block (AMI, from 0) of the chain. ``skipped`` is the reason no event
came from a well-formed CDR (``not_pstn_leg``, ``dialled_leg``); ``rejected`` is the first
refusal, as the dead-letter topic would have it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from cdrstream.ingest.ami_messages import MessageReader
from cdrstream.ingest.asterisk_cdr import (
    AsteriskCdr,
    AsteriskConfig,
    Chains,
    chain_events,
    parse_ami_event,
    parse_csv_line,
    skip_reason,
)
from cdrstream.ingest.freeswitch_cdr import FreeswitchConfig, decode_post, freeswitch_event
from cdrstream.ingest.results import Mapped, Rejected, Result, Skipped

Preview = dict[str, Any]


def preview(source: str, results: Sequence[Result], skipped: str | None = None) -> Preview:
    """One output line: ``skipped`` (the given reason) only when nothing else came out."""
    refusal = next((r for r in results if isinstance(r, Rejected)), None)
    skip = next((r.reason for r in results if isinstance(r, Skipped)), None)
    return {
        "source": source,
        "events": [r.event for r in results if isinstance(r, Mapped)],
        "skipped": skip or (skipped if not results else None),
        "rejected": None if refusal is None else {"field": refusal.field, "reason": refusal.reason},
    }


def preview_freeswitch(source: str, data: bytes, config: FreeswitchConfig) -> Preview:
    """One ``mod_json_cdr`` document (raw JSON, or the ``cdr=`` forms of ``encode``)."""
    document = decode_post("", data.strip())
    if isinstance(document, Rejected):
        return preview(source, [document])
    return preview(source, [freeswitch_event(document, config)])


def _chain_preview(
    name: str, chain: list[tuple[AsteriskCdr, int]], config: AsteriskConfig
) -> Preview:
    cdrs = [cdr for cdr, _ in chain]
    results = chain_events(cdrs, config)
    return preview(f"{name}:{chain[0][1]}", results, skip_reason(cdrs, config))


def _chains(
    name: str, cdrs: Iterator[tuple[AsteriskCdr | Rejected, int]], config: AsteriskConfig
) -> list[Preview]:
    chains: Chains[int] = Chains()
    out: list[Preview] = []
    for cdr, where in cdrs:
        if isinstance(cdr, Rejected):
            done = chains.take()
            if done:
                out.append(_chain_preview(name, done, config))
            out.append(preview(f"{name}:{where}", [cdr]))
            continue
        done = chains.add(cdr, where)
        if done:
            out.append(_chain_preview(name, done, config))
    done = chains.take()
    if done:
        out.append(_chain_preview(name, done, config))
    return out


def preview_asterisk_csv(name: str, data: bytes, config: AsteriskConfig) -> list[Preview]:
    """A ``Master.csv``: one preview per chain of rows (or per unreadable row)."""

    def rows() -> Iterator[tuple[AsteriskCdr | Rejected, int]]:
        for number, line in enumerate(data.split(b"\n"), start=1):
            if line.strip():
                yield parse_csv_line(line.rstrip(b"\r"), config), number

    return _chains(name, rows(), config)


def preview_asterisk_ami(name: str, data: bytes, config: AsteriskConfig) -> list[Preview]:
    """AMI traffic as captured: its ``Event: Cdr`` blocks, one preview per chain; any other
    message (the greeting, responses, other events) is not a CDR and is passed over."""
    reader = MessageReader()
    messages = reader.feed(data.replace(b"\r\n", b"\n") + b"\n\n")
    blocks = [m for m in messages if m.event == "Cdr"]

    def cdrs() -> Iterator[tuple[AsteriskCdr | Rejected, int]]:
        for index, block in enumerate(blocks):
            yield parse_ami_event(block.headers, config), index

    return _chains(name, cdrs(), config)
