"""The Call Data Record: what is stored per (tenant, call) and served to partners."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Literal

Direction = Literal["inbound", "outbound"]


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One visible call. Times are UTC epoch milliseconds; rendering happens at the edges."""

    id: str
    tenant_id: str
    call_id: str
    started_at_ms: int
    answered_at_ms: int | None
    ended_at_ms: int
    duration: int
    source: str
    source_raw: str
    destination: str
    destination_raw: str
    extension: str
    direction: Direction
    disposition: str | None


def record_id(tenant_id: str, call_id: str) -> str:
    """Stable id of a call's record: the same (tenant, call) always maps to the same id.

    16 url-safe characters (96 bits of BLAKE2b): short enough to keep Redis indexes small,
    long enough that a collision inside one tenant's window is not a practical concern.
    """
    digest = hashlib.blake2b(f"{tenant_id}\x00{call_id}".encode(), digest_size=12).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")
