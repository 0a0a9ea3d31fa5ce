"""Which failures retrying can cure: an engine down, a timeout, a failover in progress.

Everything else (a record the broker refuses as too large, a script error on one record, a
bug) is permanent: retrying it would stall the partition forever, so the event it belongs
to goes to the dead-letter topic instead (`cdrstream.worker.batch`).
"""

from __future__ import annotations

import asyncio

from aiokafka import errors as kafka_errors
from redis import exceptions as redis_errors

# Engine states that pass on their own or when an operator fixes the engine or its config;
# a wrong password or ACL stalls the worker visibly rather than dead-letter every event.
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TimeoutError,
    asyncio.TimeoutError,
    ConnectionError,
    OSError,
    redis_errors.ConnectionError,  # also authentication, loading, max connections
    redis_errors.TimeoutError,
    redis_errors.ClusterError,  # cluster down, master down
    redis_errors.RedisClusterException,  # slot not covered while the cluster heals
    redis_errors.TryAgainError,
    redis_errors.ReadOnlyError,  # a failover turned the master into a replica
    redis_errors.OutOfMemoryError,  # maxmemory: the sweeper or an operator frees it
    redis_errors.NoPermissionError,
    redis_errors.AskError,  # includes MOVED: the cluster client follows; a resharding
    kafka_errors.KafkaTimeoutError,
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaUnavailableError,
    kafka_errors.ProducerClosed,
)
# Redis answers some engine states as a plain error reply; the first word says which.
_TRANSIENT_REPLIES = ("BUSY", "LOADING", "OOM", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "NOPERM")


def is_transient(exc: BaseException) -> bool:
    """True when the same operation may succeed later without any change to its input."""
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if isinstance(exc, kafka_errors.KafkaError):
        return bool(exc.retriable)
    if isinstance(exc, redis_errors.ResponseError):
        return str(exc).startswith(_TRANSIENT_REPLIES)
    return False
