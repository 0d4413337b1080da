"""Load shedding: refuse new work at the door (503, ``Retry-After``, a problem detail that says
to retry later) while a dependency it needs is down or a queue it feeds is backed up.

The check runs before a command touches anything, so a refused request leaves nothing behind.
It reads the shared state the workers maintain: the circuit breaker row
(``ops.circuit_breaker``, written by ``haengbok.payments.breaker``) and pgmq's queue metrics.
Readings are cached per ``LoadShedder``: the breaker's for ``ttl_seconds`` (one second by
default), the queues' for ``queue_ttl_seconds`` (five). Under load the check then costs one
small query per second per API process, not one per request, and the queues' counts one in
five seconds: counting a queue means reading its whole table, dead rows included, 16 ms for
the three Dining queues at 100 reservations/s (pg_stat_statements), where the breaker's row
takes a few microseconds. The price is that the API notices an opened or closed circuit up to a
second late, a backlog that crossed its limit up to five; limits of tens of thousands of
messages or a minute of age do not move that fast.

A circuit refuses work only until its ``next_attempt_at``: after the cool-down, requests are
taken again so that a deposit can make the trial call that closes the circuit (refusing until
the circuit closes would wait forever for a call that never comes).

A retry of a keyed command that was carried out is never refused: while the guard refuses,
it looks the ``Idempotency-Key`` up, and a stored response goes through to be replayed.

Dining command routes use ``refuse_when_overloaded(...)`` as a guard, or call
``await load_shedder.ensure_accepting(db_pool, ...)`` with the ``load_shedder`` dependency
(``provide_load_shedder``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from litestar import Litestar, Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from api.auth import Principal
from api.idempotency import idempotency_key, idempotency_scope
from api.problems import TemporarilyUnavailable
from sql import query

Database = AsyncConnectionPool[Any] | psycopg.AsyncConnection[Any]
DEFAULT_RETRY_AFTER_SECONDS = 5
QueueLimits = tuple[int | None, float | None]  # (max depth, max age in seconds); None: no limit
_STATE_KEY = "load_shedder"


@dataclass(frozen=True, slots=True)
class _Breaker:
    refusing_until: float  # on the shedder's monotonic clock; in the past when accepting


@dataclass(frozen=True, slots=True)
class _Queue:
    name: str
    depth: int
    oldest_age_seconds: float


@dataclass(frozen=True, slots=True)
class _Reading:
    breaker: _Breaker | None
    breaker_expires: float
    queues: tuple[_Queue, ...]
    queues_expires: float


class LoadShedder:
    """Decides whether to take new work; one per app (``shedder_for(app)``), safe to share
    between the requests of one event loop."""

    def __init__(
        self,
        *,
        ttl_seconds: float = 1.0,
        queue_ttl_seconds: float | None = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``queue_ttl_seconds`` None: the queues' readings last ``ttl_seconds`` too."""
        self._ttl = ttl_seconds
        self._queue_ttl = ttl_seconds if queue_ttl_seconds is None else queue_ttl_seconds
        self._clock = clock
        self._readings: dict[tuple[str | None, tuple[str, ...]], _Reading] = {}
        self._lock = asyncio.Lock()

    async def ensure_accepting(
        self,
        db: Database,
        *,
        breaker: str | None = "payments",
        queues: Sequence[str] = (),
        max_depth: int | None = None,
        max_age_seconds: float | None = None,
        retry_after_seconds: int = DEFAULT_RETRY_AFTER_SECONDS,
    ) -> None:
        """Raise ``TemporarilyUnavailable`` when the ``breaker`` refuses calls, or when one of
        ``queues`` holds more than ``max_depth`` messages or has one older than
        ``max_age_seconds``; return when the work may go ahead."""
        check_queues = tuple(sorted(queues)) if (max_depth, max_age_seconds) != (None, None) else ()
        reading = await self._reading(db, breaker, check_queues)
        now = self._clock()
        if reading.breaker is not None and reading.breaker.refusing_until > now:
            wait = max(1, math.ceil(reading.breaker.refusing_until - now))
            raise TemporarilyUnavailable(
                f"The {breaker} service is unavailable at the moment, so this request was "
                f"refused and nothing was done. Retry in {wait} seconds.",
                retry_after_seconds=wait,
            )
        for q in reading.queues:
            too_deep = max_depth is not None and q.depth > max_depth
            too_old = max_age_seconds is not None and q.oldest_age_seconds > max_age_seconds
            if too_deep or too_old:
                raise TemporarilyUnavailable(
                    "The system is working through a backlog, so this request was refused and "
                    f"nothing was done. Retry in {retry_after_seconds} seconds.",
                    retry_after_seconds=retry_after_seconds,
                )

    async def _reading(
        self, db: Database, breaker: str | None, queues: tuple[str, ...]
    ) -> _Reading:
        key = (breaker, queues)
        cached = self._readings.get(key)
        if cached is not None and not any(self._stale(cached)):
            return cached
        # One reader at a time: when the reading expires, concurrent requests wait for it
        # instead of all querying the database at once.
        async with self._lock:
            cached = self._readings.get(key)
            if cached is not None and not any(self._stale(cached)):
                return cached
            if isinstance(db, AsyncConnectionPool):
                async with db.connection() as conn:
                    reading = await self._read(conn, breaker, queues, cached)
            else:
                reading = await self._read(db, breaker, queues, cached)
            self._readings[key] = reading
            return reading

    def _stale(self, reading: _Reading) -> tuple[bool, bool]:
        """Whether the breaker's part and the queues' part have expired."""
        now = self._clock()
        return reading.breaker_expires <= now, reading.queues_expires <= now

    async def _read(
        self,
        conn: psycopg.AsyncConnection[Any],
        breaker: str | None,
        queues: tuple[str, ...],
        cached: _Reading | None,
    ) -> _Reading:
        """What expired of ``cached`` (all of it without one), read again."""
        read_at = self._clock()
        if cached is None:
            cached = _Reading(None, read_at, (), read_at)
        breaker_stale, queues_stale = self._stale(cached)
        found_breaker, breaker_expires = cached.breaker, cached.breaker_expires
        found_queues, queues_expires = cached.queues, cached.queues_expires
        if breaker_stale:
            breaker_expires = read_at + self._ttl
        if queues_stale:
            queues_expires = read_at + self._queue_ttl
        async with conn.cursor(row_factory=tuple_row) as cur:
            if breaker is not None and breaker_stale:
                await cur.execute(query("shedding.breaker"), {"name": breaker})
                row = await cur.fetchone()
                # No row: the breaker was never used, so it never opened.
                found_breaker = None
                if row is not None and row[0] != "CLOSED":
                    found_breaker = _Breaker(refusing_until=read_at + float(row[1]))
            if queues and queues_stale:
                await cur.execute(query("shedding.queue_pressure"), {"queues": list(queues)})
                found_queues = tuple(
                    _Queue(str(r[0]), int(r[1]), float(r[2])) for r in await cur.fetchall()
                )
        return _Reading(found_breaker, breaker_expires, found_queues, queues_expires)


def shedder_for(app: Litestar) -> LoadShedder:
    """The app's own shedder (created on first use): its cache is per app and process."""
    shedder = app.state.get(_STATE_KEY)
    if not isinstance(shedder, LoadShedder):
        shedder = LoadShedder()
        app.state[_STATE_KEY] = shedder
    return shedder


async def provide_load_shedder(request: Request[Any, Any, Any]) -> LoadShedder:
    """Litestar dependency: ``extra_dependencies={"load_shedder": Provide(provide_load_shedder)}``."""
    return shedder_for(request.app)


def refuse_when_overloaded(
    *,
    breaker: str | None = "payments",
    queues: Sequence[str] = (),
    max_depth: int | None = None,
    max_age_seconds: float | None = None,
    limits: Callable[[Litestar], QueueLimits] | None = None,
    retry_after_seconds: int = DEFAULT_RETRY_AFTER_SECONDS,
) -> Guard:
    """A route guard that runs ``ensure_accepting`` on the app's pool before the handler
    (and before the body is parsed), e.g.
    ``@post(..., guards=[refuse_when_overloaded(queues=["deposit"], max_depth=1000)])``.
    ``limits`` reads the queues' (max depth, max age) from the app on each request instead,
    e.g. from its settings; it replaces ``max_depth`` and ``max_age_seconds``."""
    names = tuple(queues)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        app = connection.app
        depth, age = (max_depth, max_age_seconds) if limits is None else limits(app)
        try:
            await shedder_for(app).ensure_accepting(
                app.state.db_pool,
                breaker=breaker,
                queues=names,
                max_depth=depth,
                max_age_seconds=age,
                retry_after_seconds=retry_after_seconds,
            )
        except TemporarilyUnavailable:
            if not await _answered_before(connection):
                raise

    return guard


async def _answered_before(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the request is the retry of a keyed command that was carried out: its stored
    response is replayed even while new work is refused (the command runner replays it and
    does nothing new). Refusing it would tell a client that lost the first answer that
    nothing was done, when its reservation exists. Only asked while refusing."""
    key = idempotency_key(connection.headers)
    principal = connection.scope.get("user")
    if key is None or not isinstance(principal, Principal):
        return False
    method = str(connection.scope.get("method", ""))
    scope = idempotency_scope(principal.subject, method, connection.url.path)
    async with connection.app.state.db_pool.connection() as conn:
        cur = await conn.execute(query("api.idempotency_answered"), {"scope": scope, "key": key})
        return await cur.fetchone() is not None
