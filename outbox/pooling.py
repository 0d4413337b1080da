"""Connection checks for psycopg pools that cost a round trip only when one can pay off.

A pool that checks every connection on checkout (``ConnectionPool.check_connection``) spends a
round trip per unit of work: under load that is one statement in three or four of a message
handler. A connection that went back to the pool a moment ago is alive unless the server went
away in that moment, and then the failure surfaces on its first statement anyway: the consumer
runtime retries connection errors without counting them, the API answers 503 with Retry-After.
So a connection is checked only when its last checkout is more than ``idle_seconds`` ago,
which is what a database restart leaves behind (idle connections whose server is gone).

The time is taken at checkout, in the ``check`` callback: a ``reset`` callback would stamp it on
return, but it makes the pool hand every returned connection to a worker thread.

A connection found broken means the others idle beside it probably are too (the server
restarted, or their backends were terminated). The pool would find them out one checkout at
a time, and it waits before each new attempt with a growing back-off (1, 2, 4... s): with ten
dead connections a request waited out the 30 s timeout, and readiness failed meanwhile. So the
first broken one makes the check run the pool's own ``check()`` of every idle connection
(``watch(pool)``) before it fails: the next attempt gets a live connection.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from time import monotonic
from typing import Any, Generic, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

DEFAULT_IDLE_SECONDS = 1.0


Clock = Callable[[], float]
P = TypeVar("P", ConnectionPool[Any], AsyncConnectionPool[Any])


class _LastCheckout:
    def __init__(self, idle_seconds: float, clock: Clock) -> None:
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._at: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def stamp(self, conn: Any) -> None:
        self._at[conn] = self._clock()

    def needs_check(self, conn: Any) -> bool:
        if conn.closed or conn.broken:
            return True
        returned = self._at.get(conn)
        return returned is None or self._clock() - returned > self.idle_seconds


class _Checks(Generic[P]):
    """What both pools' checks keep: when each connection was last checked out, how many
    checks and broken connections there were, and the pool to check in full (``watch``)."""

    def __init__(
        self, idle_seconds: float = DEFAULT_IDLE_SECONDS, clock: Clock = monotonic
    ) -> None:
        self._returned = _LastCheckout(idle_seconds, clock)
        self._pool: weakref.ref[P] | None = None
        self.checks = 0
        #: Checked connections found broken (each one failed a checkout attempt).
        self.broken = 0

    def watch(self, pool: P) -> None:
        self._pool = weakref.ref(pool)

    def _found_broken(self) -> P | None:
        """Count a broken connection; the pool whose idle connections to check now."""
        self.broken += 1
        return self._pool() if self._pool is not None else None


class IdleCheck(_Checks[ConnectionPool[Any]]):
    """The ``check`` callback of a ``ConnectionPool``; ``watch(pool)`` lets a broken connection
    make it check all the idle ones (see the module docstring)."""

    def check(self, conn: psycopg.Connection[Any]) -> None:
        if self._returned.needs_check(conn):
            self.checks += 1
            try:
                ConnectionPool.check_connection(conn)
            except Exception:
                if (pool := self._found_broken()) is not None:
                    pool.check()
                raise
        self._returned.stamp(conn)


class AsyncIdleCheck(_Checks[AsyncConnectionPool[Any]]):
    """The ``check`` callback of an ``AsyncConnectionPool``; ``watch(pool)`` as for
    ``IdleCheck``."""

    async def check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if self._returned.needs_check(conn):
            self.checks += 1
            try:
                await AsyncConnectionPool.check_connection(conn)
            except Exception:
                if (pool := self._found_broken()) is not None:
                    await pool.check()
                raise
        self._returned.stamp(conn)
