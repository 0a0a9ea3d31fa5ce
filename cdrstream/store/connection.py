"""The Redis client of the store: a single Redis or a Redis Cluster, from the settings."""

from __future__ import annotations

from typing import Any, TypeAlias

from redis.asyncio import Redis, RedisCluster

from cdrstream.settings import Settings

RedisClient: TypeAlias = "Redis | RedisCluster"

#: A command that takes longer than this is treated as a failure (the worker retries the
#: batch, the API answers 503). Write scripts are bounded well below it.
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 3.0
#: An idle pooled connection is PINGed before reuse after this long, so a Redis restart
#: shows up as one reconnect, not as a failed command.
HEALTH_CHECK_INTERVAL_S = 15


def connect(settings: Settings) -> RedisClient:
    """A client for ``settings.redis_url`` (``redis://`` or ``rediss://``).

    Cluster mode when ``settings.redis_cluster``: the URL names any one node, the client
    discovers the others. Responses stay bytes (``decode_responses=False``).
    """
    options: dict[str, Any] = {
        "decode_responses": False,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
    }
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, **options)
    return Redis.from_url(settings.redis_url, **options)
