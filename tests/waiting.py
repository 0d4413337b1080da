"""Wait on a condition with a deadline: tests never sleep and hope."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str | Callable[[], str] = "",
) -> T:
    """Return the first truthy value of ``predicate()``; fail the test after ``timeout``.

    ``message`` may be a callable, evaluated only on failure (to show the state at that time).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            said = message() if callable(message) else message
            raise AssertionError(f"condition not met within {timeout}s: {said or predicate}")
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], Awaitable[T]], *, within: float = 10.0, interval: float = 0.02
) -> T:
    deadline = time.monotonic() + within
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {within}s: {predicate}")
        await asyncio.sleep(interval)
