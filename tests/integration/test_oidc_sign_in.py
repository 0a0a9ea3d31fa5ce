"""The platform's sign-in tokens (OIDC JWT access tokens) against a real identity
provider's surface: a discovery document and a JWKS served over HTTP on loopback by this
test (aiohttp), keys made here with ``cryptography``, tokens signed with PyJWT (and, for
the forgeries PyJWT refuses to make, by hand). The API runs in-process on the suite's
Redis; every refusal must be a 401 problem+json."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import jwt
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cdrstream.access.oidc import OidcConfig, OidcVerifier
from cdrstream.api.app import create_api_app
from cdrstream.settings import Settings, load_settings
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.store.connection import connect

pytestmark = pytest.mark.integration

TENANT = f"sso-{uuid.uuid4().hex[:6]}"
OTHER = f"sso-other-{uuid.uuid4().hex[:6]}"
AUDIENCE = "cdrstream-api"


@dataclass
class IdentityProvider:
    """Discovery and JWKS of an issuer on loopback; ``keys`` is what the JWKS serves now."""

    port: int
    keys: dict[str, Any] = field(default_factory=dict)  # kid -> private key
    jwks_fetches: int = 0

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}/realm"

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, private in self.keys.items():
            jwk = json.loads(jwt.get_algorithm_by_name(_alg(private)).to_jwk(private.public_key()))
            out.append({**jwk, "kid": kid, "use": "sig", "alg": _alg(private)})
        return {"keys": out}

    def app(self) -> web.Application:
        async def discovery(_: web.Request) -> web.Response:
            return web.json_response(
                {"issuer": self.issuer, "jwks_uri": f"http://127.0.0.1:{self.port}/realm/jwks"}
            )

        async def jwks(_: web.Request) -> web.Response:
            self.jwks_fetches += 1
            return web.json_response(self.jwks())

        app = web.Application()
        app.router.add_get("/realm/.well-known/openid-configuration", discovery)
        app.router.add_get("/realm/jwks", jwks)
        return app


def _alg(private: Any) -> str:
    return "ES256" if isinstance(private, ec.EllipticCurvePrivateKey) else "RS256"


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(idp: IdentityProvider, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": idp.issuer,
        "aud": AUDIENCE,
        "sub": "portal-partner",
        "iat": now,
        "exp": now + 300,
        "tenants": [TENANT],
        "airtime_reseller": True,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(idp: IdentityProvider, kid: str, payload: dict[str, Any]) -> str:
    private = idp.keys[kid]
    return jwt.encode(payload, private, algorithm=_alg(private), headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hand_signed(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A JWT PyJWT will not make: ``alg: none`` (no signature) or HMAC under ``secret``."""
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}"
    signature = (
        b"" if secret is None else hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    )
    return f"{signing_input}.{_b64(signature)}"


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    provider = IdentityProvider(free_port(), {"k1": _rsa()})
    runner = web.AppRunner(provider.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", provider.port).start()
    yield provider
    await runner.cleanup()


@dataclass
class Api:
    base: str
    session: aiohttp.ClientSession

    async def status(self, token: str | None, tenant: str = TENANT) -> tuple[int, dict[str, Any]]:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with self.session.get(f"{self.base}/v1/tenants/{tenant}/cdrs", headers=headers) as r:
            body = await r.read()
            if r.status >= 400:
                assert r.headers["Content-Type"].startswith("application/problem+json")
            return r.status, orjson.loads(body) if body else {}


def _oidc_settings(redis_node: RedisNode, idp: IdentityProvider, **extra: Any) -> Settings:
    return replace(
        load_settings({}),
        redis_url=redis_node.url,
        access_file="",
        cursor_secret="oidc-test-secret",
        oidc_issuer=idp.issuer,
        oidc_audience=AUDIENCE,
        **extra,
    )


@pytest.fixture
async def make_api(redis_node: RedisNode) -> AsyncIterator[Callable[[Settings], Any]]:
    runners: list[web.AppRunner] = []
    clients: list[Any] = []
    session = aiohttp.ClientSession()

    async def start(settings: Settings) -> Api:
        redis = connect(settings)
        clients.append(redis)
        runner = web.AppRunner(create_api_app(settings, redis))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return Api(f"http://127.0.0.1:{port}", session)

    yield start
    # The client's keep-alive connections go first: aiohttp's server shutdown waits its whole
    # timeout (60 s) for a connection that turned idle after its `pre_shutdown` looked at it.
    await session.close()
    for runner in runners:
        await runner.cleanup()
    for client in clients:
        await client.aclose()


async def test_a_sign_in_token_reads_its_tenants_only(
    idp: IdentityProvider, make_api: Callable[[Settings], Any], redis_node: RedisNode
) -> None:
    api = await make_api(_oidc_settings(redis_node, idp))
    token = sign(idp, "k1", claims(idp))
    assert (await api.status(token))[0] == 200
    assert (await api.status(token, OTHER))[0] == 403
    not_reseller = sign(idp, "k1", claims(idp, airtime_reseller=False))
    assert (await api.status(not_reseller))[0] == 403
    spaced = sign(idp, "k1", claims(idp, tenants=f"{OTHER} {TENANT}"))
    assert (await api.status(spaced))[0] == 200
    assert idp.jwks_fetches == 1  # fetched once, then cached


async def test_configured_claim_names(
    idp: IdentityProvider, make_api: Callable[[Settings], Any], redis_node: RedisNode
) -> None:
    api = await make_api(
        _oidc_settings(
            redis_node,
            idp,
            oidc_partner_claim="azp",
            oidc_tenants_claim="https://portal.example/tenants",
            oidc_airtime_reseller_claim="https://portal.example/wholesale",
            oidc_masked_claim="https://portal.example/masked",
        )
    )
    namespaced = claims(
        idp,
        azp="portal-client",
        tenants=None,
        airtime_reseller=None,
        **{"https://portal.example/tenants": [TENANT], "https://portal.example/wholesale": True},
    )
    assert (await api.status(sign(idp, "k1", namespaced)))[0] == 200
    # the default claim names mean nothing now: no partner claim, no principal (401) ...
    assert (await api.status(sign(idp, "k1", claims(idp))))[0] == 401
    # ... and with one, contracts under the default names count for nothing (403)
    assert (await api.status(sign(idp, "k1", claims(idp, azp="portal-client"))))[0] == 403


@pytest.mark.parametrize(
    "case",
    [
        "alg_none",
        "hs256_with_the_public_key_pem",
        "hs256_with_the_public_jwk",
        "expired",
        "not_yet_valid",
        "issued_in_the_future",
        "wrong_issuer",
        "wrong_audience",
        "no_expiry",
        "unknown_kid",
        "signed_by_another_key",
        "es256_header_on_an_rsa_key",
        "tampered_claims",
        "partner_not_an_id",
        "masked_not_a_boolean",
        "reseller_not_a_boolean",
        "tenants_not_a_list",
    ],
)
async def test_refused_sign_in_tokens_are_401(
    case: str, idp: IdentityProvider, make_api: Callable[[Settings], Any], redis_node: RedisNode
) -> None:
    api = await make_api(_oidc_settings(redis_node, idp))
    now = int(time.time())
    good = claims(idp)
    public = idp.keys["k1"].public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged: dict[str, Callable[[], str]] = {
        "alg_none": lambda: hand_signed({"alg": "none", "kid": "k1"}, good, None),
        "hs256_with_the_public_key_pem": lambda: hand_signed(
            {"alg": "HS256", "kid": "k1", "typ": "JWT"}, good, pem
        ),
        "hs256_with_the_public_jwk": lambda: hand_signed(
            {"alg": "HS256", "kid": "k1"}, good, json.dumps(idp.jwks()["keys"][0]).encode()
        ),
        "expired": lambda: sign(idp, "k1", claims(idp, iat=now - 7200, exp=now - 3600)),
        "not_yet_valid": lambda: sign(idp, "k1", claims(idp, nbf=now + 3600, exp=now + 7200)),
        "issued_in_the_future": lambda: sign(
            idp, "k1", claims(idp, iat=now + 3600, exp=now + 7200)
        ),
        "wrong_issuer": lambda: sign(idp, "k1", claims(idp, iss="http://127.0.0.1:1/other")),
        "wrong_audience": lambda: sign(idp, "k1", claims(idp, aud="another-api")),
        "no_expiry": lambda: sign(idp, "k1", claims(idp, exp=None)),
        "unknown_kid": lambda: jwt.encode(good, _rsa(), algorithm="RS256", headers={"kid": "k9"}),
        "signed_by_another_key": lambda: jwt.encode(
            good, _rsa(), algorithm="RS256", headers={"kid": "k1"}
        ),
        "es256_header_on_an_rsa_key": lambda: jwt.encode(
            good, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "k1"}
        ),
        "tampered_claims": lambda: _swap_payload(
            sign(idp, "k1", good), claims(idp, tenants=[OTHER])
        ),
        "partner_not_an_id": lambda: sign(idp, "k1", claims(idp, sub="no spaces allowed")),
        "masked_not_a_boolean": lambda: sign(idp, "k1", claims(idp, masked_numbers="false")),
        "reseller_not_a_boolean": lambda: sign(idp, "k1", claims(idp, airtime_reseller="true")),
        "tenants_not_a_list": lambda: sign(idp, "k1", claims(idp, tenants={"a": TENANT})),
    }
    status, body = await api.status(forged[case]())
    assert status == 401, body
    assert (await api.status(sign(idp, "k1", good)))[0] == 200  # the real one still works


def _swap_payload(token: str, payload: dict[str, Any]) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{_b64(orjson.dumps(payload))}.{signature}"


async def test_key_rotation_is_followed_on_an_unknown_kid(
    idp: IdentityProvider, make_api: Callable[[Settings], Any], redis_node: RedisNode
) -> None:
    api = await make_api(_oidc_settings(redis_node, idp))
    old = sign(idp, "k1", claims(idp))
    assert (await api.status(old))[0] == 200
    # The issuer rotates: a new (EC) key, the old one withdrawn.
    idp.keys = {"k2": ec.generate_private_key(ec.SECP256R1())}
    new = sign(idp, "k2", claims(idp))
    deadline = time.monotonic() + 30  # refetches on unknown ids are at most one a second
    status = 0
    while time.monotonic() < deadline and status != 200:
        status = (await api.status(new))[0]
    assert status == 200
    assert (await api.status(old))[0] == 401  # the withdrawn key no longer verifies


async def test_discovery_naming_another_issuer_yields_no_keys(
    idp: IdentityProvider, make_api: Callable[[Settings], Any], redis_node: RedisNode
) -> None:
    settings = _oidc_settings(redis_node, idp)
    api = await make_api(replace(settings, oidc_issuer=idp.issuer + "-impostor"))
    token = sign(idp, "k1", claims(idp, iss=idp.issuer + "-impostor"))
    assert (await api.status(token))[0] == 401
    assert idp.jwks_fetches == 0


async def test_a_flood_of_unknown_kids_fetches_the_jwks_once(idp: IdentityProvider) -> None:
    frozen = 1000.0
    verifier = OidcVerifier(
        OidcConfig(
            issuer=idp.issuer, audience=AUDIENCE, jwks_url=f"http://127.0.0.1:{idp.port}/realm/jwks"
        ),
        clock=lambda: frozen,
    )
    try:
        for n in range(20):
            token = jwt.encode(claims(idp), _rsa(), algorithm="RS256", headers={"kid": f"junk{n}"})
            await verifier.ensure_key(token)
            assert verifier.principal_of(token) is None
        assert idp.jwks_fetches == 1
        assert verifier.principal_of(sign(idp, "k1", claims(idp))) is not None
    finally:
        await verifier.close()
