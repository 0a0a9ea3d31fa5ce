"""Retry what can pass: the worker stalls (visibly) on an outage, it never skips events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from cdrstream.worker.failures import is_transient

T = TypeVar("T")


async def until_done(
    what: str,
    operation: Callable[[], Awaitable[T]],
    *,
    log: logging.Logger,
    on_error: Callable[[BaseException], None] = lambda exc: None,
    retry_if: Callable[[BaseException], bool] = is_transient,
    first_delay_s: float = 0.05,
    max_delay_s: float = 5.0,
) -> T:
    """Run ``operation`` until it succeeds, with exponential backoff and one log line per failure.

    A failure for which ``retry_if`` is false is raised at once: retrying it cannot cure it
    (the caller dead-letters what it belongs to). Cancellation stops the loop. The operation
    must be safe to repeat (idempotent).
    """
    delay = first_delay_s
    attempt = 0
    while True:
        try:
            return await operation()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            on_error(exc)
            if not retry_if(exc):
                raise
            attempt += 1
            log.warning(
                "%s failed (attempt %d), retrying in %.2fs: %s: %s",
                what,
                attempt,
                delay,
                type(exc).__name__,
                exc,
            )
            await asyncio.sleep(delay)
            delay = min(max_delay_s, delay * 2)
