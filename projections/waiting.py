"""Read-your-writes: wait (bounded) until a projection has passed a command's event.

A command returns the insert-time ``position`` of its last event. That event is visible to
projections once the relay gives it a ``global_position``, and reflected in a read model once
that projection's checkpoint reaches it. The waiter LISTENs on the projection's progress
channel and re-checks on every notification; a short poll covers a notification that never
comes (the relay not yet run, a runner on a dead listener), and the timeout bounds it all.

The connection must be idle (not inside a transaction): LISTEN takes effect, and
notifications arrive, only between transactions. Each statement here ends its own transaction.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from projections.projector import progress_channel
from sql import query

DEFAULT_POLL_INTERVAL = 0.5


def wait_for_position(
    conn: psycopg.Connection[Any],
    projection_name: str,
    position: int,
    timeout: float,
    *,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
) -> bool:
    """True once ``projection_name`` has projected the event at ``position``; False on timeout."""
    _require_idle(conn)
    deadline = time.monotonic() + timeout
    channel = sql.Identifier(progress_channel(projection_name))
    params = {"name": projection_name, "position": position}
    conn.execute(sql.SQL("LISTEN {}").format(channel))
    _end_transaction(conn)
    try:
        while True:
            # Check after LISTEN, so progress made between the check and the wait still wakes us.
            with conn.cursor(row_factory=tuple_row) as cur:
                row = cur.execute(query("projection.reached"), params).fetchone()
            _end_transaction(conn)
            if _reached(row):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            for _ in conn.notifies(timeout=min(remaining, poll_interval), stop_after=1):
                pass
    finally:
        if not conn.broken:
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                conn.rollback()
            conn.execute(sql.SQL("UNLISTEN {}").format(channel))
            _end_transaction(conn)


async def wait_for_position_async(
    conn: psycopg.AsyncConnection[Any],
    projection_name: str,
    position: int,
    # Not asyncio.timeout: running out of time is an answer (False), and UNLISTEN must still run.
    timeout: float,  # noqa: ASYNC109
    *,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
) -> bool:
    """``wait_for_position`` for the API's async connections."""
    _require_idle(conn)
    deadline = time.monotonic() + timeout
    channel = sql.Identifier(progress_channel(projection_name))
    params = {"name": projection_name, "position": position}
    await conn.execute(sql.SQL("LISTEN {}").format(channel))
    await _end_transaction_async(conn)
    try:
        while True:
            async with conn.cursor(row_factory=tuple_row) as acur:
                await acur.execute(query("projection.reached"), params)
                row = await acur.fetchone()
            await _end_transaction_async(conn)
            if _reached(row):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            async for _ in conn.notifies(timeout=min(remaining, poll_interval), stop_after=1):
                pass
    finally:
        # A pooled connection must go back not listening (and not stuck in a failed transaction).
        if not conn.broken:
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                await conn.rollback()
            await conn.execute(sql.SQL("UNLISTEN {}").format(channel))
            await _end_transaction_async(conn)


async def reached_async(
    conn: psycopg.AsyncConnection[Any], projection_name: str, position: int
) -> bool:
    """Whether ``projection_name`` has projected the event at ``position`` now (no waiting)."""
    params = {"name": projection_name, "position": position}
    async with conn.cursor(row_factory=tuple_row) as acur:
        await acur.execute(query("projection.reached"), params)
        row = await acur.fetchone()
    await _end_transaction_async(conn)
    return _reached(row)


def _require_idle(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise ValueError("wait_for_position needs a connection outside a transaction")


def _end_transaction(conn: psycopg.Connection[Any]) -> None:
    # Without autocommit each statement opened a transaction: LISTEN counts, and notifications
    # are delivered, only once it ends.
    if not conn.autocommit:
        conn.commit()


async def _end_transaction_async(conn: psycopg.AsyncConnection[Any]) -> None:
    if not conn.autocommit:
        await conn.commit()


def _reached(row: tuple[Any, ...] | None) -> bool:
    if row is None:
        return False
    global_position, checkpoint = row
    return global_position is not None and checkpoint is not None and checkpoint >= global_position
