"""The circuit breakers as operators see them (``ops.circuit_breaker``), for ``/ops`` and
``/metrics``. Worker processes write the rows when a breaker changes state
(``haengbok.payments.breaker``); the API only reads them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec
import psycopg
from psycopg.rows import dict_row

from sql import query

BreakerStateName = Literal["CLOSED", "OPEN", "HALF_OPEN"]
BREAKER_STATES: tuple[BreakerStateName, ...] = ("CLOSED", "OPEN", "HALF_OPEN")


class CircuitBreakerView(msgspec.Struct, kw_only=True):
    """One breaker: its state, the consecutive failures that opened it last, and how long
    callers still wait before the next attempt (null while it is closed)."""

    name: str
    state: BreakerStateName
    failures: int
    opened_at: datetime | None
    next_attempt_at: datetime | None
    updated_at: datetime
    retry_in_seconds: float | None


async def read_circuit_breakers(conn: psycopg.AsyncConnection[Any]) -> list[CircuitBreakerView]:
    """Every breaker, by name."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query("ops.circuit_breakers"))
        rows = await cur.fetchall()
    return [msgspec.convert(r, CircuitBreakerView, strict=False) for r in rows]
