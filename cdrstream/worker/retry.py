"""Retry until done: the worker stalls on an outage, it never skips events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def until_done(
    what: str,
    operation: Callable[[], Awaitable[T]],
    *,
    log: logging.Logger,
    on_error: Callable[[], None] = lambda: None,
    first_delay_s: float = 0.05,
    max_delay_s: float = 5.0,
) -> T:
    """Run ``operation`` until it succeeds, with exponential backoff and one log line per failure.

    Only cancellation stops it. The operation must be safe to repeat (idempotent).
    """
    delay = first_delay_s
    attempt = 0
    while True:
        try:
            return await operation()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure is retried: skipping would lose events
            attempt += 1
            on_error()
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
