"""Which failures the worker retries: only those that can pass without a change of input."""

from __future__ import annotations

import pytest
from aiokafka import errors as kafka_errors
from redis import exceptions as redis_errors

from cdrstream.worker.failures import is_transient

TRANSIENT = [
    ConnectionRefusedError(111, "refused"),
    TimeoutError(),
    TimeoutError(),
    redis_errors.ConnectionError("Connection closed by server."),
    redis_errors.TimeoutError("Timeout reading from socket"),
    redis_errors.BusyLoadingError("Redis is loading the dataset in memory"),
    redis_errors.AuthenticationError("invalid password"),
    redis_errors.ClusterDownError("CLUSTERDOWN The cluster is down"),
    redis_errors.TryAgainError("TRYAGAIN"),
    redis_errors.ReadOnlyError("READONLY You can't write against a read only replica."),
    redis_errors.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."),
    redis_errors.ResponseError("BUSY Redis is busy running a script."),
    redis_errors.SlotNotCoveredError("slot not covered"),
    kafka_errors.KafkaConnectionError("no broker"),
    kafka_errors.KafkaTimeoutError(),
    kafka_errors.NotLeaderForPartitionError(),
    kafka_errors.RequestTimedOutError(),
    kafka_errors.NodeNotReadyError(),
]

PERMANENT = [
    kafka_errors.MessageSizeTooLargeError("too large"),
    kafka_errors.RecordListTooLargeError(),
    kafka_errors.CorruptRecordException(),
    redis_errors.ResponseError("ERR user_script:12: Script attempted to access nonexistent"),
    redis_errors.DataError("Invalid input of type: 'dict'"),
    ValueError("bug"),
    KeyError("bug"),
    TypeError("bug"),
    UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_engine_states_are_retried(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
def test_what_retrying_cannot_cure_is_not_retried(exc: BaseException) -> None:
    assert not is_transient(exc)
