"""What ``cdrstream token`` (and the demo) do, on the backend the settings name: Redis,
shared by every API replica (the default), or the single-host access file when
``CDRSTREAM_ACCESS_FILE`` is set. Synchronous: each call is one short command."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from cdrstream.access import access_store, cursor_keys, redis_access
from cdrstream.access.access_store import AccessData, TokenEntry
from cdrstream.settings import Settings

T = TypeVar("T")


def where(settings: Settings) -> str:
    """Where tokens are stored, for messages (no credentials: the URL's host part only)."""
    if settings.access_file:
        return f"the access file {settings.access_file}"
    return f"redis {settings.redis_url.split('@')[-1]}"


def _in_redis(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    from cdrstream.store.connection import connect

    async def run() -> T:
        redis = connect(settings)
        try:
            return await work(redis)
        finally:
            await redis.aclose()

    return asyncio.run(run())


def issue(
    settings: Settings,
    *,
    partner: str,
    tenants: Sequence[str],
    airtime_reseller: bool,
    masked_numbers: bool = False,
) -> tuple[str, TokenEntry]:
    grant: dict[str, Any] = {
        "partner": partner,
        "tenants": tenants,
        "airtime_reseller": airtime_reseller,
        "masked_numbers": masked_numbers,
    }
    if settings.access_file:
        return access_store.issue_token(settings.access_file, **grant)
    return _in_redis(settings, lambda redis: redis_access.issue(redis, **grant))


def revoke(
    settings: Settings, *, partner: str | None = None, token_id: str | None = None
) -> list[TokenEntry]:
    if settings.access_file:
        return access_store.revoke_tokens(settings.access_file, partner=partner, token_id=token_id)
    return _in_redis(
        settings, lambda redis: redis_access.revoke(redis, partner=partner, token_id=token_id)
    )


def list_tokens(settings: Settings) -> AccessData:
    if settings.access_file:
        return access_store.read_access(settings.access_file)
    return _in_redis(settings, redis_access.load_tokens)


def import_file(settings: Settings, path: str | Path) -> tuple[int, int]:
    """Copy an access file into Redis: ``(added, already there)``."""
    if settings.access_file:
        raise ValueError("CDRSTREAM_ACCESS_FILE is set: unset it to import into redis")
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file")
    access = access_store.read_access(path)
    return _in_redis(settings, lambda redis: redis_access.import_entries(redis, access))


def rotate_cursor_secret(settings: Settings) -> None:
    if settings.cursor_secret:
        raise ValueError("CDRSTREAM_CURSOR_SECRET is set: the API uses it, not the shared one")
    now_ms = time.time_ns() // 1_000_000
    _in_redis(settings, lambda redis: cursor_keys.rotate_cursor_secret(redis, now_ms))
