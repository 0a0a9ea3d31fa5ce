"""Stored tokens (hashed, each with its partner, contracts and grant), the access file
backend, and :class:`AccessCache`: what the API asks "whom does this credential prove".

Tokens live in Redis (``redis_access.py``: shared by every API replica) unless
``CDRSTREAM_ACCESS_FILE`` names a file: that opt-in keeps them in a JSON file on the one
host, for a single API process (or processes sharing that file system). Its format::

    {"version": 1,
     "tokens": [{"token_id": "3f2a9c0b1d4e", "token_hash": "<sha256 hex>",
                 "partner": "acme-telecom", "tenants": ["t-100", "t-200"],
                 "airtime_reseller": true, "masked_numbers": false,
                 "created_at": "2026-11-25T08:14:03Z", "revoked_at": null}]}

``masked_numbers`` (``token issue --mask``): the token is served every number masked
(`cdrstream.core.masking`). An entry written before the flag existed has no such key and
reads as ``false``; a key that is there must be ``true`` or ``false``.

The file holds no token, only hashes; it is still created 0600 because it names who may
read whose calls. ``token issue`` and ``token revoke`` change it under an exclusive lock
(a ``.lock`` file beside it) and replace it atomically (write a temporary file, fsync,
rename), so the API never reads half a file. A revoked token stays in the file with its
``revoked_at`` time, for the audit trail.

The API process reads it through :class:`FileTokens`, which checks the file's
modification at most once a second, so issuing and revoking take effect without a
restart. A file that cannot be read or parsed keeps the last good copy (and is logged);
a file that does not exist means no token is valid. ``cdrstream token import FILE``
copies such a file into Redis.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError

from cdrstream.access import tokens
from cdrstream.access.policy import bearer_token
from cdrstream.access.principal import PARTNER_RE, Principal
from cdrstream.core.event import TENANT_ID

if TYPE_CHECKING:
    from cdrstream.access.oidc import OidcVerifier

log = logging.getLogger(__name__)

_HASH_RE = re.compile(r"[0-9a-f]{64}")
_TOKEN_ID_RE = re.compile(r"[0-9a-f]{12}")


class AccessFileError(ValueError):
    """The access file exists but is not a valid access document."""


class AccessUnavailable(RedisConnectionError):
    """Whether a credential is valid cannot be told now (the access data in Redis could
    not be confirmed recently enough). A Redis error: the API answers 503, never 200."""


@dataclass(frozen=True, slots=True)
class TokenEntry:
    token_id: str
    token_hash: str
    partner: str
    tenants: frozenset[str]
    airtime_reseller: bool
    created_at: str
    revoked_at: str | None = None
    masked_numbers: bool = False  # every number it is served is masked

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def principal(self) -> Principal:
        return Principal(self.partner, self.tenants, self.airtime_reseller, self.masked_numbers)

    def to_json(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "token_hash": self.token_hash,
            "partner": self.partner,
            "tenants": sorted(self.tenants),
            "airtime_reseller": self.airtime_reseller,
            "masked_numbers": self.masked_numbers,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True, slots=True)
class AccessData:
    tokens: tuple[TokenEntry, ...] = ()
    by_id: dict[str, TokenEntry] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, entries: Sequence[TokenEntry]) -> AccessData:
        return cls(tuple(entries), {e.token_id: e for e in entries})

    def lookup(self, token_id: str) -> TokenEntry | None:
        return self.by_id.get(token_id)

    def principal_of(self, token: str) -> Principal | None:
        """Whom ``token`` proves: a well-formed token whose stored hash matches (constant
        time) and that is not revoked; else None. One hash, one compare."""
        token_id = tokens.token_id_of(token)
        entry = None if token_id is None else self.lookup(token_id)
        if entry is None or not tokens.matches(token, entry.token_hash) or entry.revoked:
            return None
        return entry.principal()


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_from_json(raw: object) -> TokenEntry:
    """A token entry from its JSON object (``TokenEntry.to_json``), checked field by field."""
    if not isinstance(raw, dict):
        raise AccessFileError("a token entry is not an object")
    token_id, token_hash, partner = raw.get("token_id"), raw.get("token_hash"), raw.get("partner")
    tenants, reseller = raw.get("tenants"), raw.get("airtime_reseller")
    created_at, revoked_at = raw.get("created_at"), raw.get("revoked_at")
    masked = raw.get("masked_numbers", False)
    if not (isinstance(token_id, str) and _TOKEN_ID_RE.fullmatch(token_id)):
        raise AccessFileError(f"bad token_id {token_id!r}")
    if not (isinstance(token_hash, str) and _HASH_RE.fullmatch(token_hash)):
        raise AccessFileError(f"token {token_id}: bad token_hash")
    if not isinstance(partner, str) or not partner:
        raise AccessFileError(f"token {token_id}: bad partner")
    if not (isinstance(tenants, list) and all(isinstance(t, str) for t in tenants)):
        raise AccessFileError(f"token {token_id}: tenants is not a list of strings")
    if not isinstance(reseller, bool):
        raise AccessFileError(f"token {token_id}: airtime_reseller is not true/false")
    if not isinstance(masked, bool):
        raise AccessFileError(f"token {token_id}: masked_numbers is not true/false")
    if not isinstance(created_at, str) or not (revoked_at is None or isinstance(revoked_at, str)):
        raise AccessFileError(f"token {token_id}: bad created_at/revoked_at")
    return TokenEntry(
        token_id=token_id,
        token_hash=token_hash,
        partner=partner,
        tenants=frozenset(tenants),
        airtime_reseller=reseller,
        created_at=created_at,
        revoked_at=revoked_at,
        masked_numbers=masked,
    )


def parse_access(data: bytes) -> AccessData:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise AccessFileError(f"not JSON: {exc}") from exc
    if (
        not isinstance(doc, dict)
        or doc.get("version") != 1
        or not isinstance(doc.get("tokens"), list)
    ):
        raise AccessFileError('expected {"version": 1, "tokens": [...]}')
    return AccessData.of([entry_from_json(raw) for raw in doc["tokens"]])


def read_access(path: str | Path) -> AccessData:
    """The access file's content; an absent file is an empty one."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return AccessData()
    return parse_access(data)


def write_access(path: str | Path, access: AccessData) -> None:
    """Replace the access file atomically; the new file is 0600."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    body = orjson.dumps(
        {"version": 1, "tokens": [e.to_json() for e in access.tokens]},
        option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE,
    )
    # mkstemp creates the file 0600 whatever the umask.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(body)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    with contextlib.suppress(OSError):  # make the rename durable too
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _update(path: str | Path, change: Callable[[AccessData], AccessData]) -> AccessData:
    with _locked(Path(path)):
        updated = change(read_access(path))
        write_access(path, updated)
        return updated


def new_entry(
    *, partner: str, tenants: Sequence[str], airtime_reseller: bool, masked_numbers: bool
) -> tuple[str, TokenEntry]:
    """A new token and its entry to store, after checking the partner and tenant ids."""
    if not PARTNER_RE.fullmatch(partner):
        raise ValueError(f"partner must match {PARTNER_RE.pattern}: {partner!r}")
    bad = [t for t in tenants if not TENANT_ID.fullmatch(t)]
    if bad:
        raise ValueError(f"tenant ids must match {TENANT_ID.pattern}: {bad!r}")
    token_id, token = tokens.new_token()
    entry = TokenEntry(
        token_id=token_id,
        token_hash=tokens.token_hash(token),
        partner=partner,
        tenants=frozenset(tenants),
        airtime_reseller=airtime_reseller,
        created_at=_utc_now(),
        masked_numbers=masked_numbers,
    )
    return token, entry


def issue_token(
    path: str | Path,
    *,
    partner: str,
    tenants: Sequence[str],
    airtime_reseller: bool,
    masked_numbers: bool = False,
) -> tuple[str, TokenEntry]:
    """Store a new token's hash in the access file and return ``(token, entry)``: the only
    time the token exists."""
    token, entry = new_entry(
        partner=partner,
        tenants=tenants,
        airtime_reseller=airtime_reseller,
        masked_numbers=masked_numbers,
    )
    token_id = entry.token_id

    def add(access: AccessData) -> AccessData:
        if access.lookup(token_id) is not None:  # 48 random bits: practically never
            raise RuntimeError("token id collision, issue again")
        return AccessData.of([*access.tokens, entry])

    _update(path, add)
    return token, entry


def revoke_tokens(
    path: str | Path, *, partner: str | None = None, token_id: str | None = None
) -> list[TokenEntry]:
    """Revoke the live tokens of ``partner`` and/or the token ``token_id``; returns them."""
    revoked: list[TokenEntry] = []

    def revoke(access: AccessData) -> AccessData:
        changed = revocations(access.tokens, partner=partner, token_id=token_id)
        revoked.extend(changed)
        by_id = {e.token_id: e for e in changed}
        return AccessData.of([by_id.get(e.token_id, e) for e in access.tokens])

    _update(path, revoke)
    return revoked


def revocations(
    entries: Sequence[TokenEntry], *, partner: str | None, token_id: str | None
) -> list[TokenEntry]:
    """The live entries of ``partner`` and/or ``token_id``, as revoked now."""
    if partner is None and token_id is None:
        raise ValueError("name a partner or a token id")
    now = _utc_now()
    return [
        replace(e, revoked_at=now)
        for e in entries
        if (partner is None or e.partner == partner)
        and (token_id is None or e.token_id == token_id)
        and not e.revoked
    ]


class TokenSource(Protocol):
    """The stored tokens as an API process holds them (the file, or Redis)."""

    def current(self) -> AccessData:
        """The tokens, without I/O; raises ``AccessUnavailable`` when they are too stale."""

    async def ensure_fresh(self) -> None:
        """Make ``current`` answerable (a Redis round trip only when the copy is aging)."""


class AccessCache:
    """The API's answer to "whom does this presented credential prove, now?".

    ``lookup(credential)`` is the one function for it, for a token of ours (``cdrs_...``,
    from the ``tokens`` source) and, when OIDC is configured, a sign-in JWT (``oidc``):
    no I/O, so the policy can ask it on every request and a live stream or an export can
    ask it again while it runs. ``prepare(authorization)``, awaited before a tenant route
    decides, refreshes what ``lookup`` needs when it is aging (the Redis copy of the
    tokens; a JWKS that lacks the token's ``kid``).
    """

    def __init__(self, tokens_source: TokenSource, oidc: OidcVerifier | None = None) -> None:
        self._tokens = tokens_source
        self._oidc = oidc

    def lookup(self, credential: str) -> Principal | None:
        if credential.startswith(f"{tokens.PREFIX}_"):
            return self._tokens.current().principal_of(credential)
        if self._oidc is not None:
            return self._oidc.principal_of(credential)
        return None

    async def prepare(self, authorization: str | None) -> None:
        credential = bearer_token(authorization)
        if credential is None:
            return
        if credential.startswith(f"{tokens.PREFIX}_"):
            await self._tokens.ensure_fresh()
        elif self._oidc is not None:
            await self._oidc.ensure_key(credential)


class FileTokens:
    """The access file as the API sees it: re-read on change, checked at most once a second."""

    def __init__(
        self,
        path: str | Path,
        *,
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = Path(path)
        self._interval = check_interval_s
        self._clock = clock
        self._checked_at: float | None = None
        self._signature: tuple[int, int, int] | None = None
        self._data = AccessData()

    def current(self) -> AccessData:
        now = self._clock()
        if self._checked_at is None or now - self._checked_at >= self._interval:
            self._checked_at = now
            self._refresh()
        return self._data

    async def ensure_fresh(self) -> None:
        """Nothing to await: ``current`` reads the (local) file itself."""

    def _refresh(self) -> None:
        try:
            st = self._path.stat()
        except FileNotFoundError:
            if self._signature is not None:
                log.warning("access file %s is gone: no token is valid now", self._path)
            self._signature, self._data = None, AccessData()
            return
        except OSError as exc:
            log.error("access file %s: %s; keeping the last good copy", self._path, exc)
            return
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        if signature == self._signature:
            return
        try:
            self._data = read_access(self._path)
        except (OSError, AccessFileError) as exc:
            log.error("access file %s unreadable (%s); keeping the last good copy", self._path, exc)
            return
        self._signature = signature
        log.info("access file loaded: %d tokens", len(self._data.tokens))
