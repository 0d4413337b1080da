"""The circuit breakers' shared state in PostgreSQL (``ops.circuit_breaker``).

The store has one connection of its own, in autocommit, opened on first use: a breaker must
not write through the handler's connection (its transaction may roll back, and the state
change must stay), nor borrow from the handlers' pool (sized for the worker threads). Calls are
rare (a read per second per process, a write per state change), so one connection guarded by a
lock is enough. Any database error becomes ``StoreUnavailable``: the breaker then keeps its
local view and the connection is opened again on the next use.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg.rows import dict_row

from haengbok.payments.breaker import BreakerRecord, BreakerState, StoreUnavailable
from sql import query

# Short: a slow database must not hold every payment call behind the breaker's lock.
_CONNECT_TIMEOUT_SECONDS = 2
_STATEMENT_TIMEOUT_MS = 2000


class PostgresBreakerStore:
    """``BreakerStore`` on ``ops.circuit_breaker``; thread-safe, one per process."""

    def __init__(self, database_url: str, *, application_name: str = "haengbok-breaker") -> None:
        self._url = database_url
        self._application_name = application_name
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def load(self, name: str) -> BreakerRecord:
        """The stored record, registering a CLOSED one first if the breaker is new."""
        with self._lock:
            conn = self._connection()
            try:
                row = conn.execute(query("circuit_breaker.get"), {"name": name}).fetchone()
                if row is None:  # first use: the read every second stays a read afterwards
                    conn.execute(query("circuit_breaker.register"), {"name": name})
                    row = conn.execute(query("circuit_breaker.get"), {"name": name}).fetchone()
            except psycopg.Error as exc:
                self._drop()
                raise StoreUnavailable(str(exc)) from exc
        if row is None:  # deleted by hand between the two statements
            return BreakerRecord()
        return _record(row)

    def replace(self, name: str, expected_version: int, record: BreakerRecord) -> BreakerRecord:
        """Compare-and-set on version; the stored record afterwards (ours or the winner's)."""
        params = {
            "name": name,
            "state": record.state.value,
            "failures": record.failures,
            "opened_at": record.opened_at,
            "next_attempt_at": record.next_attempt_at,
            "expected_version": expected_version,
        }
        with self._lock:
            conn = self._connection()
            try:
                row = conn.execute(query("circuit_breaker.replace"), params).fetchone()
                if row is None:  # another process changed it first: read the winner
                    row = conn.execute(query("circuit_breaker.get"), {"name": name}).fetchone()
            except psycopg.Error as exc:
                self._drop()
                raise StoreUnavailable(str(exc)) from exc
        return BreakerRecord() if row is None else _record(row)

    def close(self) -> None:
        """Close the connection (it is opened again if the store is used later)."""
        with self._lock:
            self._drop()

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            self._conn = psycopg.connect(
                self._url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=_CONNECT_TIMEOUT_SECONDS,
                application_name=self._application_name,
                options=f"-c statement_timeout={_STATEMENT_TIMEOUT_MS}",
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(str(exc)) from exc
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None


def _record(row: dict[str, Any]) -> BreakerRecord:
    return BreakerRecord(
        state=BreakerState(row["state"]),
        failures=int(row["failures"]),
        opened_at=row["opened_at"],
        next_attempt_at=row["next_attempt_at"],
        version=int(row["version"]),
    )
