"""Read-your-writes for Dining's queries: wait (bounded) for the read models a view reads.

A command answers with ``X-Log-Position``; a query given it as ``min_position`` waits until
every projection behind the view has passed that position, sharing one deadline
(``settings.read_wait_max_seconds``). Running out of time is not an error: the query answers
from the read model as it is and says so in ``X-Read-Model-Stale: true``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Annotated, Any

import psycopg
from litestar.datastructures import ResponseHeader
from litestar.params import QueryParameter

from api.schemas import MAX_BIGINT
from haengbok.settings import Settings
from projections.waiting import reached_async, wait_for_position_async

STALE_HEADER = "X-Read-Model-Stale"

MinPosition = Annotated[
    int | None,
    QueryParameter(
        name="min_position",
        ge=1,
        le=MAX_BIGINT,
        description="A command's `X-Log-Position`: wait (bounded) until this view reflects it",
    ),
]

STALE_RESPONSE_HEADERS = [
    ResponseHeader(
        name=STALE_HEADER,
        documentation_only=True,
        description="`true` when `min_position` was not reached in time: the answer may not "
        "show that write yet; retry with the same `min_position`",
    )
]


# Requests of this process waiting for a read model now, by event loop (one per API process;
# tests run several). A waiting request holds its pooled connection (it LISTENs on it).
_WAITING: dict[int, int] = {}


async def caught_up(
    conn: psycopg.AsyncConnection[Any],
    projections: Sequence[str],
    min_position: int | None,
    settings: Settings,
) -> bool:
    """True once every one of ``projections`` passed ``min_position`` (at once if None).

    Views already there answer at once. Otherwise the request waits, at most
    ``settings.read_wait_max_seconds``, but only while fewer than
    ``settings.read_wait_max_concurrent`` requests of this process wait: each holds a pooled
    connection meanwhile, and ten of them had made a reservation wait 4.6 s for a connection,
    and twenty a plain read 9 s. A request that finds no room answers at once, stale, as one
    that ran out of time does."""
    if min_position is None:
        return True
    behind = [name for name in projections if not await reached_async(conn, name, min_position)]
    if not behind:
        return True
    loop = id(asyncio.get_running_loop())
    if _WAITING.get(loop, 0) >= settings.read_wait_max_concurrent:
        return False
    _WAITING[loop] = _WAITING.get(loop, 0) + 1
    try:
        deadline = time.monotonic() + settings.read_wait_max_seconds
        for name in behind:
            remaining = max(0.0, deadline - time.monotonic())
            # A zero remainder still checks once: a projection already there is not stale.
            if not await wait_for_position_async(conn, name, min_position, remaining):
                return False
        return True
    finally:
        _WAITING[loop] -= 1


def stale_headers(fresh: bool) -> dict[str, str]:
    """The header that tells a client its write may not show yet."""
    return {} if fresh else {STALE_HEADER: "true"}
