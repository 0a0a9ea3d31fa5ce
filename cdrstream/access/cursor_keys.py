"""The paging cursors' secret shared by every API replica through Redis (when
``CDRSTREAM_CURSOR_SECRET`` is not set), so a cursor made on one replica works on all.

``access:{cdrstream}:cursor`` (HASH, the access hash tag): ``current`` (32 random bytes,
hex), ``previous`` and ``rotated_at_ms`` once rotated. The first replica that finds no
secret creates it with ``HSETNX`` inside the script that reads it back, so concurrent
starts agree on one secret. ``cdrstream token rotate-cursor-secret`` makes a new current
secret and keeps the old one as ``previous``, accepted for :data:`PREVIOUS_ACCEPTED_MS`
after the rotation (cursors a client holds keep working for an hour); the rotation
increments the access version, so every replica reloads within its poll interval.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cdrstream.access.access_store import AccessUnavailable
from cdrstream.access.redis_access import VERSION

CURSOR = "access:{cdrstream}:cursor"
PREVIOUS_ACCEPTED_MS = 3_600_000
SECRET_BYTES = 32

#: KEYS: cursor, ARGV: a fresh secret (used only if there is none yet).
_ENSURE = """
redis.call('HSETNX', KEYS[1], 'current', ARGV[1])
return redis.call('HMGET', KEYS[1], 'current', 'previous', 'rotated_at_ms')
"""
#: KEYS: cursor, version. ARGV: the new secret, the rotation time (ms since the epoch).
_ROTATE = """
local current = redis.call('HGET', KEYS[1], 'current')
if current then redis.call('HSET', KEYS[1], 'previous', current) end
redis.call('HSET', KEYS[1], 'current', ARGV[1], 'rotated_at_ms', ARGV[2])
return redis.call('INCR', KEYS[2])
"""


def _fresh_secret() -> str:
    return secrets.token_hex(SECRET_BYTES)


@dataclass(frozen=True, slots=True)
class CursorSecrets:
    current: bytes
    previous: bytes | None = None
    rotated_at_ms: int = 0


async def load_cursor_secrets(redis: Any) -> CursorSecrets:
    """The shared secrets, the current one created now if there is none."""
    current, previous, rotated_at = await redis.eval(_ENSURE, 1, CURSOR, _fresh_secret())
    return CursorSecrets(
        bytes.fromhex(current.decode("ascii")),
        bytes.fromhex(previous.decode("ascii")) if previous else None,
        int(rotated_at) if rotated_at else 0,
    )


async def rotate_cursor_secret(redis: Any, now_ms: int) -> None:
    await redis.eval(_ROTATE, 2, CURSOR, VERSION, _fresh_secret(), str(now_ms))


class SharedCursorKeys:
    """The cursor keyring of one API process (``store.cursor.CursorKeyring``), loaded from
    Redis by the access refresher (``redis_view.py``)."""

    def __init__(self, wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self._wall_ms = wall_ms
        self._secrets: CursorSecrets | None = None

    def update(self, loaded: CursorSecrets) -> None:
        self._secrets = loaded

    @property
    def loaded(self) -> bool:
        return self._secrets is not None

    def _current(self) -> CursorSecrets:
        if self._secrets is None:  # Redis not reached since the start: 503, as for any read
            raise AccessUnavailable("the shared cursor secret is not loaded yet")
        return self._secrets

    def signing_key(self) -> bytes:
        return self._current().current

    def verifying_keys(self) -> Sequence[bytes]:
        s = self._current()
        if s.previous is not None and self._wall_ms() - s.rotated_at_ms < PREVIOUS_ACCEPTED_MS:
            return (s.current, s.previous)
        return (s.current,)
