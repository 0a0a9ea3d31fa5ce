"""Partner access in Redis: the tokens (hashed) with their partner, contracts and grant,
shared by every API replica, written by ``cdrstream token issue | revoke | import``.

The keys live beside the records (the same Redis or Cluster) and carry one hash tag, so
each write below is one Lua script on one slot, atomic on a single Redis and on Cluster:

===========================  ======  ==========================================================
key                          type    content
===========================  ======  ==========================================================
``access:{cdrstream}:tokens``  HASH  token id -> the entry as JSON (``TokenEntry.to_json``:
                                     the SHA-256 of the token, never the token; partner,
                                     tenants, ``airtime_reseller``, ``masked_numbers``,
                                     ``created_at``, ``revoked_at``). A revoked token stays,
                                     with its time, for the audit trail.
``access:{cdrstream}:version`` STRING a counter every change increments, in the same script
                                     as the change: the invalidation signal the replicas
                                     poll (``redis_view.py``).
``access:{cdrstream}:cursor``  HASH  the shared cursor secret (``cursor_keys.py``).
===========================  ======  ==========================================================

A partner's contracts are recorded on each of its tokens (as the access file did): a
contract change is a new token and the revocation of the old one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson

from cdrstream.access.access_store import (
    AccessData,
    AccessFileError,
    TokenEntry,
    entry_from_json,
    new_entry,
    revocations,
)

log = logging.getLogger(__name__)

TOKENS = "access:{cdrstream}:tokens"
VERSION = "access:{cdrstream}:version"

#: KEYS: tokens, version. ARGV: mode ("new": refuse an id that exists; "put": overwrite;
#: "import": skip ids that exist), then field/value pairs. Returns the entries written.
_WRITE = """
local written = 0
for i = 2, #ARGV, 2 do
  local exists = redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1
  if exists and ARGV[1] == 'new' then return -1 end
  if not (exists and ARGV[1] == 'import') then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    written = written + 1
  end
end
if written > 0 then redis.call('INCR', KEYS[2]) end
return written
"""


def _encode(entry: TokenEntry) -> bytes:
    return orjson.dumps(entry.to_json())


async def _write(redis: Any, mode: str, entries: Sequence[TokenEntry]) -> int:
    pairs: list[Any] = []
    for e in entries:
        pairs += [e.token_id, _encode(e)]
    return int(await redis.eval(_WRITE, 2, TOKENS, VERSION, mode, *pairs))


async def load_tokens(redis: Any) -> AccessData:
    """Every stored entry, in issue order. An entry that is not a valid one (only a hand
    edit makes one) is left out and logged: its token is unknown, so it opens nothing."""
    entries = []
    for field, value in (await redis.hgetall(TOKENS)).items():
        try:
            entries.append(entry_from_json(orjson.loads(value)))
        except (orjson.JSONDecodeError, AccessFileError) as exc:
            log.error("%s: entry %r left out: %s", TOKENS, field[:12], exc)
    return AccessData.of(sorted(entries, key=lambda e: (e.created_at, e.token_id)))


async def issue(
    redis: Any,
    *,
    partner: str,
    tenants: Sequence[str],
    airtime_reseller: bool,
    masked_numbers: bool = False,
) -> tuple[str, TokenEntry]:
    """Store a new token's hash and return ``(token, entry)``: the only time the token exists."""
    token, entry = new_entry(
        partner=partner,
        tenants=tenants,
        airtime_reseller=airtime_reseller,
        masked_numbers=masked_numbers,
    )
    if await _write(redis, "new", [entry]) != 1:  # 48 random bits: practically never
        raise RuntimeError("token id collision, issue again")
    return token, entry


async def revoke(
    redis: Any, *, partner: str | None = None, token_id: str | None = None
) -> list[TokenEntry]:
    """Revoke the live tokens of ``partner`` and/or the token ``token_id``; returns them."""
    changed = revocations((await load_tokens(redis)).tokens, partner=partner, token_id=token_id)
    if changed:
        await _write(redis, "put", changed)
    return changed


async def import_entries(redis: Any, access: AccessData) -> tuple[int, int]:
    """Copy an access file's entries (``read_access``) into Redis: ``(added, skipped)``.
    An id already in Redis is skipped, so importing the same file twice changes nothing."""
    if not access.tokens:
        return 0, 0
    added = await _write(redis, "import", access.tokens)
    return added, len(access.tokens) - added
