"""Running the store's commands and Lua scripts on Redis: one pipeline per round trip.

Every script runs by ``EVALSHA``; a Redis that does not have it (restarted, flushed, a new
cluster node) answers ``NOSCRIPT``, and :func:`run_pipeline` (the one place that handles
it) loads the scripts and sends those calls again. A pipeline that meets a connection
closed by a Redis restart is sent again after the pooled connections are reconnected
(:func:`send_once_more_if_stale`). Both are safe because every call the store pipelines is
a read or an idempotent script (a repeated write reports ``duplicate``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cdrstream.store.connection import reconnect_pooled_connections

#: How many times a pipeline is sent again after connection errors.
STALE_RESENDS = 3


@dataclass(frozen=True)
class Script:
    """A Lua script (its text with includes expanded, see ``scripts.py``) and its SHA1."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    async def load(self, redis: Any) -> None:
        """SCRIPT LOAD (on every primary in cluster mode), sent again on a stale connection.

        Right after a Redis restart many requests load at once; redis-py's cluster client
        then sometimes writes on a connection another task is reconnecting and fails with
        ``AttributeError: 'NoneType' object has no attribute 'writelines'``: that counts as
        a stale connection too."""
        for attempt in range(STALE_RESENDS + 1):
            try:
                await redis.script_load(self.source)
                return
            except (RedisConnectionError, RedisTimeoutError, AttributeError):
                if attempt == STALE_RESENDS:
                    raise


class ScriptCall(NamedTuple):
    """One EVALSHA: built by the script's function in ``scripts.py``, never by hand."""

    script: Script
    keys: list[str]
    args: list[Any]

    async def run(self, redis: Any) -> Any:
        return (await run_pipeline(redis, [self]))[0]


class Command(NamedTuple):
    """One plain Redis command."""

    name: str
    args: list[Any]


Call = ScriptCall | Command


async def run_pipeline(redis: Any, calls: Sequence[Call]) -> list[Any]:
    """``calls`` in one pipeline (one round trip per node), in order; their replies.

    On NOSCRIPT the scripts are loaded and the calls that got it are sent again (the
    others keep their replies: a write that ran must not run twice); any other error is
    raised."""
    results = await _send(redis, calls)
    missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
    if missing:
        for script in {c.script for c in calls if isinstance(c, ScriptCall)}:
            await script.load(redis)
        again = await _send(redis, [calls[i] for i in missing])
        for i, reply in zip(missing, again, strict=True):
            results[i] = reply
    for r in results:
        if isinstance(r, Exception):
            raise r
    return results


async def _send(redis: Any, calls: Sequence[Call]) -> list[Any]:
    async def send() -> list[Any]:
        pipe = redis.pipeline(transaction=False)
        for call in calls:
            if isinstance(call, Command):
                pipe.execute_command(call.name, *call.args)
            else:
                # execute_command: redis-py blocks pipe.evalsha() on cluster pipelines, but
                # routes a raw EVALSHA by its first key (all keys share the tenant's slot).
                keys = call.keys
                pipe.execute_command("EVALSHA", call.script.sha, len(keys), *keys, *call.args)
        return list(await pipe.execute(raise_on_error=False))

    return await send_once_more_if_stale(redis, send)


async def send_once_more_if_stale(
    redis: Any, send: Callable[[], Awaitable[list[Any]]]
) -> list[Any]:
    """``send()`` a pipeline; when a result is a connection error (a pooled connection that
    a Redis restart closed), have ``redis``'s pooled connections (opened before the same
    restart, most likely) reconnected and send it again, up to ``STALE_RESENDS`` times. A
    pipeline executed with ``raise_on_error=False`` keeps such errors as results, so
    redis-py's own retry (which covers single commands, `connection.connect`) never sees
    them."""
    results = await send()
    for _ in range(STALE_RESENDS):
        if not any(isinstance(r, RedisConnectionError | RedisTimeoutError) for r in results):
            break
        reconnect_pooled_connections(redis)
        results = await send()
    return results
