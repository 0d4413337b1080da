"""What one process owns for a broker: its pool, its LISTEN connection, doorbells, ack buffers.

Dramatiq workers may fork. Each process opens its own pool on first use. Resources inherited
through ``fork`` are never used or closed in the child: their sockets still belong to the
parent, and a query or a Terminate message from the child would corrupt or end the parent's
sessions. They stay referenced so that no finaliser (the pool's, the listener's) runs on them.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import psycopg
from dramatiq.errors import ConnectionClosed
from psycopg_pool import ConnectionPool, PoolTimeout

from outbox import wire
from outbox.broker_listener import Doorbell, QueueListener

log = logging.getLogger(__name__)
T = TypeVar("T")

APPLICATION_NAME = "haengbok-broker"


class AckBuffer:
    """msg_ids acked by worker threads, waiting to be deleted by the consumer thread."""

    def __init__(self, linger_seconds: float) -> None:
        self._linger = linger_seconds
        self._lock = threading.Lock()
        self._ids: list[int] = []
        self._since = 0.0

    def add(self, msg_id: int, now: float) -> None:
        with self._lock:
            if not self._ids:
                self._since = now
            self._ids.append(msg_id)

    def take(self) -> list[int]:
        with self._lock:
            ids, self._ids = self._ids, []
            return ids

    def put_back(self, ids: list[int], now: float) -> None:
        if ids:
            with self._lock:
                self._since = self._since if self._ids else now
                self._ids.extend(ids)

    def due(self, now: float, batch: int) -> bool:
        """Enough acks for a batch, or the oldest waited long enough for a read to ride on."""
        with self._lock:
            return len(self._ids) >= batch or (
                bool(self._ids) and now - self._since >= self._linger
            )

    def flush_at(self) -> float:
        with self._lock:
            return self._since + self._linger if self._ids else float("inf")


@dataclass(frozen=True)
class Connector:
    """How a process gets its pool (own one from ``conninfo``, or ``pool_factory()``) and its
    LISTEN connection."""

    conninfo: str | None
    pool_factory: Callable[[], ConnectionPool[Any]] | None
    pool_min_size: int
    pool_max_size: int
    pool_timeout_seconds: float

    def open_pool(self) -> ConnectionPool[Any]:
        if self.pool_factory is not None:
            pool = self.pool_factory()
        else:
            pool = ConnectionPool(
                self.conninfo or "", min_size=self.pool_min_size, max_size=self.pool_max_size,
                open=False, name="pgmq-broker", timeout=self.pool_timeout_seconds,
                kwargs={"autocommit": True, "application_name": APPLICATION_NAME},
            )  # fmt: skip
        if pool.closed:
            pool.open(wait=False)
        return pool

    def listen_connection(self, pool: ConnectionPool[Any]) -> psycopg.Connection[Any]:
        conninfo = self.conninfo
        if conninfo is None:
            conninfo = pool.conninfo if isinstance(pool.conninfo, str) else pool.conninfo()
        return psycopg.connect(
            conninfo, autocommit=True, application_name=f"{APPLICATION_NAME}-listen",
            connect_timeout=max(1, int(self.pool_timeout_seconds)),
        )  # fmt: skip


class ProcessResources:
    """One process's connections and wake-up machinery for one broker."""

    def __init__(self, connector: Connector, ack_linger_seconds: float) -> None:
        self.pid = os.getpid()
        self.pool = connector.open_pool()
        self._lock = threading.Lock()
        self._doorbells: dict[str, Doorbell] = {}
        self._acks: dict[str, AckBuffer] = {}
        self._ack_linger = ack_linger_seconds
        self.listener = QueueListener(
            lambda: connector.listen_connection(self.pool), self._on_notify, self._ring_all
        )

    def doorbell(self, queue_name: str) -> Doorbell:
        with self._lock:
            bell = self._doorbells.setdefault(queue_name, Doorbell())
        self.listener.listen(wire.notify_channel(queue_name))
        return bell

    def ring(self, queue_name: str) -> None:
        bell = self._doorbells.get(queue_name)
        if bell is not None:
            bell.ring()

    def ack_buffer(self, queue_name: str) -> AckBuffer:
        with self._lock:
            return self._acks.setdefault(queue_name, AckBuffer(self._ack_linger))

    def pending_acks(self) -> dict[str, list[int]]:
        with self._lock:
            buffers = list(self._acks.items())
        return {queue: ids for queue, buffer in buffers if (ids := buffer.take())}

    def run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``work`` on a pool connection. A broken connection is retried on another one
        (after the first failure the pool is checked, which discards its idle dead ones);
        no connection in time, or a failure on as many connections as the pool holds plus
        one, becomes Dramatiq's ``ConnectionClosed``.

        Why more than one retry: when the server drops every session, the connections other
        threads hold come back to the pool after the check, each still looking idle, and the
        next checkout may get one of them. A failed connection is discarded, so each retry
        uses up one dead connection and the bound is the pool's size. An operational error on a
        connection that still works (a cancelled statement, say) is retried once, as before.
        """
        attempts = self.pool.max_size + 1
        for attempt in range(1, attempts + 1):
            lost = False
            try:
                with self.pool.connection() as conn:
                    try:
                        return work(conn)
                    except psycopg.OperationalError:
                        lost = conn.broken
                        raise
            except PoolTimeout as exc:
                raise ConnectionClosed(exc) from exc  # type: ignore[no-untyped-call]
            except psycopg.OperationalError as exc:
                if attempt == attempts or (attempt > 1 and not lost):
                    raise ConnectionClosed(exc) from exc  # type: ignore[no-untyped-call]
                log.info("broker connection failed (%s); retrying on another connection", exc)
                if attempt == 1:
                    self.pool.check()
        raise AssertionError("unreachable")

    def _on_notify(self, channel: str) -> None:
        with self._lock:
            bells = [b for q, b in self._doorbells.items() if wire.notify_channel(q) == channel]
        for bell in bells:
            bell.ring()

    def _ring_all(self) -> None:
        # Notifications sent while the LISTEN connection was down are lost: look again.
        with self._lock:
            bells = list(self._doorbells.values())
        for bell in bells:
            bell.ring()


class _Owner(Protocol):
    def forget_parent_resources(self) -> None: ...


#: Resources inherited through fork: kept alive in the child and never touched.
INHERITED: list[ProcessResources] = []
_OWNERS: weakref.WeakSet[Any] = weakref.WeakSet()


def track_for_fork(owner: _Owner) -> None:
    """Have ``owner.forget_parent_resources()`` called in every child forked from here."""
    _OWNERS.add(owner)


def _after_fork_in_child() -> None:
    for owner in list(_OWNERS):
        owner.forget_parent_resources()


os.register_at_fork(after_in_child=_after_fork_in_child)
