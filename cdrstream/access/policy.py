"""May the bearer of this Authorization header read this tenant? A pure decision.

Contract §3 rule 9: only a partner that resells airtime (wholesale) and holds an airtime
contract with the tenant may read the tenant's records.

- ``unauthenticated`` (401): no header, not ``Bearer``, or a credential the access layer
  does not vouch for: for a token of ours a malformed token, an unknown token id, a hash
  that does not match or a revoked token; for a sign-in token (OIDC JWT) a bad signature,
  a refused algorithm, a wrong issuer or audience, an expired or not-yet-valid token, or
  unusable claims. These cases are not told apart in the answer.
- ``forbidden`` (403): a valid token whose partner is not an airtime reseller, or has no
  contract with the tenant. Whether the tenant exists plays no part (the decision never
  looks at the store), so the 403 is the same for real and made-up tenants. A token with
  masked numbers is decided exactly like any other.
- ``allowed``, with the caller's :class:`Principal`: its partner and its grant
  (``masked_numbers``).

Which principal a credential proves is the access layer's answer, given here as
``check`` (in the API: ``AccessCache.lookup``, from the cached tokens and the cached JWKS,
no I/O). A check that cannot tell (Redis unreachable for too long) raises
``AccessUnavailable`` (a 503): it never answers as if the credential were valid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cdrstream.access.principal import Principal

Verdict = Literal["allowed", "unauthenticated", "forbidden"]


@dataclass(frozen=True, slots=True)
class AccessDecision:
    verdict: Verdict
    entry: Principal | None = None  # the authenticated caller, when there is one


#: The access layer's answer to "whom does this presented credential (the bearer value)
#: prove, now?": the principal, or None when it proves nobody.
CredentialCheck = Callable[[str], Principal | None]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value or None


def authenticate(authorization: str | None, check: CredentialCheck) -> Principal | None:
    """The principal the header's bearer credential proves, else None."""
    credential = bearer_token(authorization)
    return None if credential is None else check(credential)


def may_read(principal: Principal, tenant_id: str) -> bool:
    return principal.airtime_reseller and tenant_id in principal.tenants


def decide_access(
    authorization: str | None, tenant_id: str, check: CredentialCheck
) -> AccessDecision:
    """May the bearer of ``authorization`` read ``tenant_id`` now? The one place deciding;
    a live stream or an export asks it again while it runs, to end on a revocation."""
    principal = authenticate(authorization, check)
    if principal is None:
        return AccessDecision("unauthenticated")
    if not may_read(principal, tenant_id):
        return AccessDecision("forbidden", principal)
    return AccessDecision("allowed", principal)
