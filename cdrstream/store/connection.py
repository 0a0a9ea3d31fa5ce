"""The Redis client of the store: a single Redis or a Redis Cluster, from the settings.

Both the worker (writes) and the API (reads) use :func:`connect`, so both get the same
reconnect behaviour:

- **One retry on a fresh connection** (:data:`RETRY`): a command that fails with a
  connection error or a socket timeout, typically on a pooled connection Redis closed
  when it restarted, is sent once more after the connection is dropped and re-opened
  (the retry connects anew). redis-py's ``Retry``/``ExponentialWithJitterBackoff`` do
  it, not a loop of ours. ``Redis.from_url`` must be given ``retry`` explicitly:
  without it the URL's pool builds connections with ``Retry(NoBackoff(), 0)``, and the
  first command on every stale connection fails (30 concurrent reads right after a
  restart answered 26 times 503). In cluster mode the client uses the same policy's
  retry count at cluster level: it refreshes the slot map and sends the command again.
  The asyncio ``Retry`` class is required (the sync one would block the loop).
- **Cluster topology before use** (:func:`prepare`): a cluster client that meets its
  first commands concurrently, before it has loaded the slot map, races in redis-py
  (connections closed under a command being sent: ``AttributeError`` from inside
  redis-py); ``prepare`` loads the map once, before serving.
- **Health checks** (single Redis): a pooled connection idle for
  :data:`HEALTH_CHECK_INTERVAL_S` is PINGed before reuse, so a restart during a quiet
  spell costs a reconnect, not a retry.
- **Stale cluster connections reconnected after a connection error**
  (:func:`reconnect_pooled_connections`): a single Redis's pool checks each connection
  it hands out (a connection the server closed is reopened), a cluster node's pool does
  not. A pipeline that met a closed connection is sent again
  (``runner.send_once_more_if_stale``), but a node may hold dozens more connections the
  same restart closed, one per earlier concurrent request, and each resend would take
  the next of them: 30 concurrent reads after a rolling restart of a 3-master cluster
  answered up to 6 times 503. So the store marks every pooled connection for reconnect
  first.
- **No health-check PING on a cluster**: on a cluster node a failed PING is raised from
  the send, and redis-py's cluster pipeline answers that by closing the whole client
  under every concurrent command (``AttributeError``/``RuntimeError`` from inside the
  client). Without it a stale connection fails on its read, which the resend handles.

Commands the store sends are safe to repeat: reads, and write scripts that are
idempotent per record id (a repeated write reports ``duplicate``).
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeAlias

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, TimeoutError

from cdrstream.settings import Settings

RedisClient: TypeAlias = "Redis | RedisCluster"

#: A command that takes longer than this is treated as a failure (the worker retries the
#: batch, the API answers 503). Write scripts are bounded well below it.
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 3.0
#: An idle pooled connection is PINGed before reuse after this long, so a Redis restart
#: shows up as one reconnect, not as a failed command.
HEALTH_CHECK_INTERVAL_S = 15
#: Times a failed command is sent again, each time on a re-opened connection. One is what
#: a stale pooled connection needs; more would only hold a request (or a worker batch,
#: which has its own retry) while Redis is really down.
RETRIES = 1
#: The cluster client uses the count differently: each retry refreshes the slot map and
#: takes a pooled connection of the (new) owner again, which may itself be one the
#: restart closed; redis-py's own default (10) is kept for it.
CLUSTER_RETRIES = 10
#: Pause before the retry: a random 0..min(cap, base * 2**failures) seconds.
RETRY_BACKOFF_BASE_S = 0.05
RETRY_BACKOFF_CAP_S = 0.5
RETRY_ON = (ConnectionError, TimeoutError)


def retry_policy(retries: int = RETRIES) -> Retry:
    """A fresh retry policy (each client gets its own: redis-py keeps state in it)."""
    return Retry(
        ExponentialWithJitterBackoff(cap=RETRY_BACKOFF_CAP_S, base=RETRY_BACKOFF_BASE_S),
        retries,
        supported_errors=RETRY_ON,
    )


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
        options["health_check_interval"] = 0
        return RedisCluster.from_url(
            settings.redis_url, retry=retry_policy(CLUSTER_RETRIES), **options
        )
    return Redis.from_url(settings.redis_url, retry=retry_policy(), **options)


async def prepare(client: RedisClient, timeout_s: float = CONNECT_TIMEOUT_S * 2) -> None:
    """Ready ``client`` for concurrent use: a cluster client loads its slot map now.

    Raises what the connection raises (Redis down); a caller may go on without it:
    the client then loads the map on its first command.
    """
    if isinstance(client, RedisCluster):
        async with asyncio.timeout(timeout_s):
            await client.initialize()


def reconnect_pooled_connections(client: RedisClient) -> None:
    """After a connection error on a cluster: mark every pooled connection of every node for
    reconnect. Each is then closed and opened anew by the next command that takes it, in
    that command's own task. (Closing them from here, as redis-py's
    ``disconnect_free_connections`` does, races a command that takes one meanwhile: it
    writes on a closed transport, ``AttributeError``/``RuntimeError`` from the client.) A
    single Redis's pool needs nothing: it checks a connection when it hands it out."""
    if isinstance(client, RedisCluster):
        for node in client.get_nodes():
            # ``_connections``: redis-py (8.1) has no public list of a node's connections.
            for connection in node._connections:
                connection.mark_for_reconnect()
