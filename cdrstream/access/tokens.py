"""Bearer tokens: ``cdrs_<token_id>_<secret>``, stored as a SHA-256 hash only.

The token id is not secret: it is how the API finds the one stored entry to compare
against, so verification costs one hash and one constant-time compare whatever the size
of the access file. The secret is 256 random bits; with that much entropy a plain SHA-256
is as good as a slow password hash (nobody can enumerate 2**256 candidates), and it keeps
every request cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "cdrs"
_ID_BYTES = 6  # 12 hex characters: unique enough for ids, and readable in `token list`
_SECRET_BYTES = 32  # 256 bits
_TOKEN_RE = re.compile(r"cdrs_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


def new_token() -> tuple[str, str]:
    """A fresh ``(token_id, token)``. The token is shown once and never stored."""
    token_id = secrets.token_hex(_ID_BYTES)
    return token_id, f"{PREFIX}_{token_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"


def token_hash(token: str) -> str:
    """What is stored in place of the token: hex SHA-256 of the whole token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """``(token id, secret)`` of a well-formed token, else None. The secret is url-safe
    base64, so it may itself hold ``_``: split a token only with this."""
    match = _TOKEN_RE.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None


def token_id_of(token: str) -> str | None:
    """The id inside a well-formed token, else None (a malformed token is never looked up)."""
    parsed = parse_token(token)
    return parsed[0] if parsed else None


def matches(token: str, stored_hash: str) -> bool:
    """Whether ``token`` hashes to ``stored_hash``, compared in constant time."""
    return hmac.compare_digest(token_hash(token).encode("ascii"), stored_hash.encode("ascii"))
