"""The access layer of one API process, assembled from the settings: where tokens come
from (Redis, or the single-host access file), the sign-in verifier (OIDC, when
configured), the cursor secret (fixed, or shared through Redis), and their lifecycle."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisClusterException, RedisError

from cdrstream.access.access_store import AccessCache, FileTokens, TokenSource
from cdrstream.access.cursor_keys import SharedCursorKeys
from cdrstream.access.oidc import OidcConfig, OidcVerifier
from cdrstream.access.redis_view import RedisAccessView
from cdrstream.settings import Settings
from cdrstream.store.cursor import CursorSecret

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ApiAccess:
    cache: AccessCache
    cursor_secret: CursorSecret
    view: RedisAccessView | None = None  # polls Redis: tokens and/or the cursor secret
    oidc: OidcVerifier | None = None

    async def start(self) -> None:
        if self.view is None:
            return
        try:
            await self.view.refresh()
        except (RedisError, RedisClusterException, OSError) as exc:  # the poller retries
            log.warning("access data not loaded at start: %s: %s", type(exc).__name__, exc)
        self.view.start()

    async def stop(self) -> None:
        if self.view is not None:
            await self.view.stop()
        if self.oidc is not None:
            await self.oidc.close()


def api_access(
    settings: Settings,
    redis: Any,
    *,
    cursor_secret: bytes | None = None,
    access: AccessCache | None = None,
) -> ApiAccess:
    """``access`` and ``cursor_secret`` given (tests) replace what the settings say."""
    fixed = cursor_secret or settings.cursor_secret.encode("utf-8")
    keys = None if fixed else SharedCursorKeys()
    secret: CursorSecret = keys if keys is not None else fixed
    tokens_in_redis = access is None and not settings.access_file
    view = None
    if tokens_in_redis or keys is not None:
        view = RedisAccessView(redis, tokens=tokens_in_redis, cursor_keys=keys)
    oidc = None
    if access is None:
        config = OidcConfig.from_settings(settings)
        oidc = OidcVerifier(config) if config is not None else None
        source: TokenSource = FileTokens(settings.access_file)
        if view is not None and tokens_in_redis:
            source = view
        else:
            log.warning(
                "tokens are read from the access file %s: for a single API host only; "
                "unset CDRSTREAM_ACCESS_FILE to share them through Redis",
                settings.access_file,
            )
        access = AccessCache(source, oidc)
    return ApiAccess(access, secret, view, oidc)
