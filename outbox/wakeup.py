"""Waking the relay after commits, one NOTIFY for many commits.

Whoever appends to the log wakes the relay after committing (the relay also polls, so a lost
wake-up costs latency, never a message). Under load a NOTIFY per commit is a transaction per
commit that does nothing else: here commits only ``poke``, and one sender per process issues a
NOTIFY at once when idle, or one per ``min_interval_seconds`` for all the pokes of a busy
stretch. The NOTIFY runs in its own autocommit statement, never in a committing transaction
(where it would take the cluster-wide notification lock and serialise commits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from sql import query

log = logging.getLogger(__name__)

DEFAULT_MIN_INTERVAL_SECONDS = 0.005


class RelayWakeup:
    """A thread that turns pokes into NOTIFYs on a connection of its own."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        *,
        min_interval_seconds: float = DEFAULT_MIN_INTERVAL_SECONDS,
    ) -> None:
        self._connect = connect
        self._interval = min_interval_seconds
        self._poked = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0

    def poke(self) -> None:
        self._poked.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="relay-wakeup", daemon=True)
        self._thread.start()

    def stop(self, timeout_seconds: float = 5.0) -> None:
        self._stop.set()
        self._poked.set()
        if self._thread is not None:
            self._thread.join(timeout_seconds)

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        try:
            while True:
                self._poked.wait()
                if self._stop.is_set():
                    return
                self._poked.clear()
                try:
                    if conn is None or conn.closed:
                        conn = self._connect()
                    conn.execute(query("outbox.notify_relay"))
                    self.sent += 1
                except psycopg.Error as exc:
                    log.warning("relay wake-up failed (the relay's polling covers it): %s", exc)
                    if conn is not None:
                        conn.close()
                    conn = None
                # Pokes that arrive meanwhile are served by the next NOTIFY.
                self._stop.wait(self._interval)
        finally:
            if conn is not None:
                conn.close()


class AsyncRelayWakeup:
    """The same for an asyncio application: a task that sends the NOTIFYs on a connection of
    its own (not one borrowed from the request pool, where it would wait behind requests at
    the busiest moments and add a checkout to every NOTIFY)."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
        *,
        min_interval_seconds: float = DEFAULT_MIN_INTERVAL_SECONDS,
    ) -> None:
        self._connect = connect
        self._interval = min_interval_seconds
        self._poked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.sent = 0

    def poke(self) -> None:
        self._poked.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="relay-wakeup")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _notify(self) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = await self._connect()
        try:
            await self._conn.execute(query("outbox.notify_relay"))
        except psycopg.Error:
            await self._conn.close()
            self._conn = None  # the next poke connects again
            raise

    async def _run(self) -> None:
        while True:
            await self._poked.wait()
            self._poked.clear()
            try:
                await self._notify()
                self.sent += 1
            except Exception as exc:  # a lost wake-up only costs latency
                log.warning("relay wake-up failed (the relay's polling covers it): %r", exc)
            await asyncio.sleep(self._interval)
