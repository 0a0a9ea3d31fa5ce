"""May the bearer of this Authorization header read this tenant? A pure decision.

Contract §3 rule 9: only a partner that resells airtime (wholesale) and holds an airtime
contract with the tenant may read the tenant's records.

- ``unauthenticated`` (401): no header, not ``Bearer``, a malformed token, an unknown
  token id, a hash that does not match, or a revoked token. These cases are not told
  apart in the answer.
- ``forbidden`` (403): a valid token whose partner is not an airtime reseller, or has no
  contract with the tenant. Whether the tenant exists plays no part (the decision never
  looks at the store), so the 403 is the same for real and made-up tenants. A token with
  masked numbers is decided exactly like any other.
- ``allowed``, with the token's entry: its partner and its grant (``masked_numbers``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cdrstream.access import tokens
from cdrstream.access.access_store import TokenEntry

Verdict = Literal["allowed", "unauthenticated", "forbidden"]


@dataclass(frozen=True, slots=True)
class AccessDecision:
    verdict: Verdict
    entry: TokenEntry | None = None  # the authenticated token, when there is one


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value or None


def authenticate(
    authorization: str | None, lookup: Callable[[str], TokenEntry | None]
) -> TokenEntry | None:
    """The live token entry the header proves possession of, else None."""
    token = bearer_token(authorization)
    if token is None:
        return None
    token_id = tokens.token_id_of(token)
    if token_id is None:
        return None
    entry = lookup(token_id)
    if entry is None or not tokens.matches(token, entry.token_hash) or entry.revoked:
        return None
    return entry


def may_read(entry: TokenEntry, tenant_id: str) -> bool:
    return entry.airtime_reseller and tenant_id in entry.tenants


def decide_access(
    authorization: str | None,
    tenant_id: str,
    lookup: Callable[[str], TokenEntry | None],
) -> AccessDecision:
    entry = authenticate(authorization, lookup)
    if entry is None:
        return AccessDecision("unauthenticated")
    if not may_read(entry, tenant_id):
        return AccessDecision("forbidden", entry)
    return AccessDecision("allowed", entry)
