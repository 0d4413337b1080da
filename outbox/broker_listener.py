"""Wake-ups for idle consumers: a doorbell per queue and one LISTEN connection per process.

A notification is only a hint. Consumers also poll (with backoff), so a lost notification, a
killed LISTEN connection or a sender that does not notify only costs latency, never a message.
"""

from __future__ import annotations

import logging
import os
import selectors
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql as pgsql

from sql import query

log = logging.getLogger(__name__)

#: Seconds without traffic after which the LISTEN connection is probed: a server that vanished
#: without closing the socket (network partition) would otherwise never be noticed.
KEEPALIVE_SECONDS = 30.0
MAX_RECONNECT_DELAY = 2.0


class Doorbell:
    """Rung when a queue may have work (NOTIFY, local enqueue, an ack freeing capacity).

    A waiter takes a ``ticket`` before it looks at the database and sleeps only while no ring
    came after that ticket, so a ring that lands during the look is never lost.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._rings = 0

    def ticket(self) -> int:
        with self._cond:
            return self._rings

    def ring(self) -> None:
        with self._cond:
            self._rings += 1
            self._cond.notify_all()

    def rung_since(self, ticket: int) -> bool:
        with self._cond:
            return self._rings != ticket

    def wait(self, ticket: int, timeout: float) -> bool:
        """Sleep until a ring after ``ticket`` or ``timeout`` seconds; True if rung."""
        with self._cond:
            return self._cond.wait_for(lambda: self._rings != ticket, max(timeout, 0.0))


class QueueListener:
    """Owns the process's LISTEN connection; reconnects by itself with backoff.

    ``on_notify(channel)`` runs for every notification; ``on_connect()`` after every
    (re)connection, because notifications sent while disconnected are gone.
    """

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        on_notify: Callable[[str], None],
        on_connect: Callable[[], None],
    ) -> None:
        self._connect = connect
        self._on_notify = on_notify
        self._on_connect = on_connect
        self._lock = threading.Lock()
        self._channels: set[str] = set()
        self._unsubscribed: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poke_r, self._poke_w = -1, -1
        #: How many times a LISTEN connection was established (tests wait on it).
        self.connections = 0
        self.backend_pid: int | None = None

    def listen(self, channel: str) -> None:
        """Subscribe to ``channel``; starts the listener thread on first use."""
        with self._lock:
            if channel in self._channels:
                return
            self._channels.add(channel)
            self._unsubscribed.add(channel)
            if self._thread is None:
                self._poke_r, self._poke_w = os.pipe()
                self._thread = threading.Thread(
                    target=self._run, name="pgmq-broker-listener", daemon=True
                )
                self._thread.start()
        self._poke()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._poke()
        thread.join(timeout)
        os.close(self._poke_r)
        os.close(self._poke_w)

    def _poke(self) -> None:
        # Interrupts the select() of the listener thread so new channels are subscribed at once.
        if self._poke_w >= 0:
            try:
                os.write(self._poke_w, b"x")
            except OSError:
                log.debug("listener pipe already closed")

    def _run(self) -> None:
        delay = 0.05
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    self._serve(conn)
            except psycopg.Error as exc:
                log.warning("broker LISTEN connection lost (%s); reconnecting in %.2fs", exc, delay)
            except Exception:
                log.exception("broker listener failed; reconnecting in %.2fs", delay)
            else:
                delay = 0.05
                continue
            self.backend_pid = None
            self._stop.wait(delay)
            delay = min(delay * 2, MAX_RECONNECT_DELAY)

    def _serve(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            self._unsubscribed = set(self._channels)
        self._subscribe(conn)
        self.backend_pid = conn.info.backend_pid
        self.connections += 1
        self._on_connect()
        with selectors.DefaultSelector() as selector:
            selector.register(conn.fileno(), selectors.EVENT_READ, "db")
            selector.register(self._poke_r, selectors.EVENT_READ, "poke")
            while not self._stop.is_set():
                events = selector.select(timeout=KEEPALIVE_SECONDS)
                for key, _ in events:
                    if key.data == "poke":
                        os.read(self._poke_r, 4096)
                self._subscribe(conn)
                if not events:
                    conn.execute(query("broker.ping"))
                # notifies(timeout=0) drains what arrived and raises if the server hung up.
                for notify in conn.notifies(timeout=0):
                    self._on_notify(notify.channel)
                if conn.broken or conn.closed:
                    raise psycopg.OperationalError("LISTEN connection closed")

    def _subscribe(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            channels, self._unsubscribed = self._unsubscribed, set()
        for channel in sorted(channels):
            stmt = pgsql.SQL(query("broker.listen")).format(channel=pgsql.Identifier(channel))
            conn.execute(stmt)
