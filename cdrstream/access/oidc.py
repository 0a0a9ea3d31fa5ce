"""The platform's own sign-in: OIDC / OAuth 2.0 JWT access tokens signed by its identity
provider, accepted beside our own tokens when ``CDRSTREAM_OIDC_ISSUER`` is set.

Verification is PyJWT's (signature, ``exp``, ``nbf``, ``iat``, ``iss``, ``aud``), with the
keys of the issuer's JWKS (``CDRSTREAM_OIDC_JWKS_URL``, else the ``jwks_uri`` of
``<issuer>/.well-known/openid-configuration``, whose ``issuer`` must be the configured
one). Refused, as a 401 like any unknown token:

- an algorithm outside :data:`ALGORITHMS` (asymmetric only): ``none``, and every HMAC
  algorithm, so a token "signed" with the public key as an HMAC secret (HS/RS confusion)
  is never checked that way; a token whose ``alg`` is not its key's (PyJWT binds each
  JWK to one algorithm: its ``alg``, else the one its ``kty``/``crv`` implies);
- a ``kid`` the JWKS does not have; a key with ``use`` other than ``sig``;
- expired or not yet valid (``exp``, ``nbf``, ``iat``; :data:`LEEWAY_S` of clock skew),
  another issuer or audience, or no ``exp``/``iss``/``aud``;
- claims that do not make a principal: the partner claim missing or not a partner id,
  the tenants claim not a list of strings (or one space-separated string), the reseller or
  masked claim present but not a JSON boolean.

Claim names are configurable and top-level (a name may contain dots, as namespaced claims
like ``https://portal.example/tenants`` do). A missing reseller or masked claim reads as
false. A sign-in token is valid until it expires: the identity provider's short lifetime
is its revocation (there is no ``token revoke`` for it).

**Keys are fetched off the request path's hot loop work:** with aiohttp (never a blocking
call on the event loop), by :meth:`OidcVerifier.ensure_key`, awaited before a tenant
route decides when the token's ``kid`` is unknown (a rotation) or the set is older than
:data:`JWKS_MAX_AGE_S` (so a key the issuer withdrew stops working). Fetches are single
flight and at most one per :data:`MIN_REFETCH_S` on unknown ids, so a flood of made-up
``kid`` values costs the issuer nothing. ``principal_of`` then verifies with the cached
keys, no I/O. A failed fetch keeps the keys it had (logged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from cdrstream.access.principal import PARTNER_RE, Principal
from cdrstream.settings import Settings

log = logging.getLogger(__name__)

ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
LEEWAY_S = 30
JWKS_MAX_AGE_S = 300.0
MIN_REFETCH_S = 1.0
FETCH_TIMEOUT_S = 5.0
DISCOVERY_PATH = "/.well-known/openid-configuration"


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks_url: str = ""
    partner_claim: str = "sub"
    tenants_claim: str = "tenants"
    airtime_reseller_claim: str = "airtime_reseller"
    masked_claim: str = "masked_numbers"

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        """The configuration, or None when sign-in tokens are not accepted (no issuer)."""
        if not settings.oidc_issuer:
            return None
        if not settings.oidc_audience:
            raise ValueError("CDRSTREAM_OIDC_AUDIENCE must be set with CDRSTREAM_OIDC_ISSUER")
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url,
            partner_claim=settings.oidc_partner_claim,
            tenants_claim=settings.oidc_tenants_claim,
            airtime_reseller_claim=settings.oidc_airtime_reseller_claim,
            masked_claim=settings.oidc_masked_claim,
        )


def principal_from_claims(config: OidcConfig, claims: Mapping[str, Any]) -> Principal | None:
    """The principal verified claims name, or None when they do not make one."""
    partner = claims.get(config.partner_claim)
    tenants = claims.get(config.tenants_claim, [])
    reseller = claims.get(config.airtime_reseller_claim, False)
    masked = claims.get(config.masked_claim, False)
    if not isinstance(partner, str) or not PARTNER_RE.fullmatch(partner):
        return None
    if isinstance(tenants, str):
        tenants = tenants.split()
    if not (isinstance(tenants, list) and all(isinstance(t, str) for t in tenants)):
        return None
    if not (isinstance(reseller, bool) and isinstance(masked, bool)):
        return None
    return Principal(partner, frozenset(tenants), reseller, masked)


def _kid(credential: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(credential).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def _signing_keys(jwks: Any) -> dict[str, jwt.PyJWK]:
    """The usable signature keys of a JWKS document, by ``kid``."""
    keys: dict[str, jwt.PyJWK] = {}
    for raw in jwks.get("keys", []) if isinstance(jwks, dict) else []:
        if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
            continue
        kid = raw.get("kid")
        try:
            key = jwt.PyJWK(raw)
        except jwt.PyJWTError:
            continue  # an unsupported key type; the others still count
        if isinstance(kid, str) and key.algorithm_name in ALGORITHMS:
            keys[kid] = key
    return keys


class OidcVerifier:
    """Sign-in tokens of one issuer: verified with its cached JWKS (see module docstring)."""

    def __init__(self, config: OidcConfig, *, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    def principal_of(self, credential: str) -> Principal | None:
        """Whom a sign-in token proves, from the cached keys (no I/O), else None."""
        kid = _kid(credential)
        key = self._keys.get(kid) if kid is not None else None
        if key is None:
            return None
        try:
            claims = jwt.decode(
                credential,
                key,
                algorithms=list(ALGORITHMS),
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError:
            return None
        return principal_from_claims(self.config, claims)

    async def ensure_key(self, credential: str) -> None:
        """Fetch the JWKS when the token's ``kid`` is unknown or the keys are old."""
        kid = _kid(credential)
        if kid is None:
            return  # not a JWT, or no kid: nothing to fetch for it
        if self._age() > JWKS_MAX_AGE_S or (kid not in self._keys and self._age() > MIN_REFETCH_S):
            await self._refresh(kid)

    def _age(self) -> float:
        return float("inf") if self._fetched_at is None else self._clock() - self._fetched_at

    async def _refresh(self, kid: str) -> None:
        async with self._lock:  # single flight: a waiter finds the keys fetched
            if kid in self._keys and self._age() <= JWKS_MAX_AGE_S:
                return
            if self._age() <= MIN_REFETCH_S:
                return
            self._fetched_at = self._clock()
            try:
                keys = _signing_keys(await self._get_json(await self._jwks_url()))
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                log.warning("OIDC keys not fetched (keeping %d): %s", len(self._keys), exc)
                return
            if not keys:
                log.warning("OIDC JWKS has no usable signature key; keeping %d", len(self._keys))
                return
            self._keys = keys
            log.info("OIDC keys fetched: %d", len(keys))

    async def _jwks_url(self) -> str:
        if self.config.jwks_url:
            return self.config.jwks_url
        document = await self._get_json(self.config.issuer.rstrip("/") + DISCOVERY_PATH)
        if not isinstance(document, dict) or document.get("issuer") != self.config.issuer:
            raise ValueError("the discovery document names another issuer")
        url = document.get("jwks_uri")
        if not isinstance(url, str) or not url:
            raise ValueError("the discovery document has no jwks_uri")
        return url

    async def _get_json(self, url: str) -> Any:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
            self._session = aiohttp.ClientSession(timeout=timeout)
        async with self._session.get(url) as answer:
            answer.raise_for_status()
            return await answer.json(content_type=None)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
