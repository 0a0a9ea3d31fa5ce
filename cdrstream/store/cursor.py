"""Paging cursors: an opaque, signed position in the newest-first order of one query.

A cursor is ``base64url(version | started_at_ms (8 bytes) | record id (UTF-8) | mac)``
without padding, where ``mac`` is the first 16 bytes of HMAC-SHA256 under the cursor
secret over the *binding* (the tenant and the query, see ``reader.query_binding``) and the
position. The position is the last record a page returned (or looked at), so the next page
starts strictly after it: records that arrive meanwhile (newer, or late ones elsewhere)
shift nothing, and no record is skipped or repeated. A cursor changed by a client, made
for another tenant or for another query (other filters) fails with ``InvalidCursor``.

The secret is either fixed bytes (``CDRSTREAM_CURSOR_SECRET``) or a :class:`CursorKeyring`
(``access/cursor_keys.py``: one secret shared by every replica through Redis, rotated):
a cursor is signed with the keyring's current key and accepted under any key it still
verifies with.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Protocol, TypeAlias

VERSION = 1
MAC_BYTES = 16
#: Longer input is refused before any decoding work (ids are short).
MAX_CURSOR_CHARS = 512
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")


class InvalidCursor(ValueError):
    """The cursor was not made by this service for this tenant and query."""


class CursorKeyring(Protocol):
    def signing_key(self) -> bytes:
        """The key new cursors are signed with."""

    def verifying_keys(self) -> Sequence[bytes]:
        """Every key a cursor is still accepted under (the signing key first)."""


CursorSecret: TypeAlias = bytes | CursorKeyring


def _signing_key(secret: CursorSecret) -> bytes:
    return secret if isinstance(secret, bytes) else secret.signing_key()


def _verifying_keys(secret: CursorSecret) -> Sequence[bytes]:
    return (secret,) if isinstance(secret, bytes) else secret.verifying_keys()


def _mac(secret: bytes, binding: bytes, body: bytes) -> bytes:
    message = len(binding).to_bytes(4, "big") + binding + body
    return hmac.new(secret, message, hashlib.sha256).digest()[:MAC_BYTES]


def encode_cursor(secret: CursorSecret, binding: bytes, started_ms: int, record_id: str) -> str:
    body = bytes([VERSION]) + started_ms.to_bytes(8, "big") + record_id.encode("utf-8")
    token = body + _mac(_signing_key(secret), binding, body)
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")


def decode_cursor(secret: CursorSecret, binding: bytes, cursor: str) -> tuple[int, str]:
    """The position ``(started_ms, record_id)`` of a cursor made by ``encode_cursor``."""
    if not cursor or len(cursor) > MAX_CURSOR_CHARS or not _ALPHABET.fullmatch(cursor):
        raise InvalidCursor("malformed cursor")
    try:
        token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("malformed cursor") from exc
    # Only the canonical spelling: base64 ignores the spare bits of the last character.
    if base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii") != cursor:
        raise InvalidCursor("malformed cursor")
    if len(token) < 1 + 8 + MAC_BYTES or token[0] != VERSION:
        raise InvalidCursor("malformed cursor")
    body, mac = token[:-MAC_BYTES], token[-MAC_BYTES:]
    if not any(hmac.compare_digest(mac, _mac(k, binding, body)) for k in _verifying_keys(secret)):
        raise InvalidCursor("cursor signature does not match this tenant and query")
    try:
        record_id = body[9:].decode("utf-8")
    except UnicodeDecodeError as exc:  # only with a leaked secret
        raise InvalidCursor("malformed cursor") from exc
    return int.from_bytes(body[1:9], "big"), record_id
