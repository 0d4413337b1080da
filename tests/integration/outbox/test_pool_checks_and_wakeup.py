"""Checks on checkout only for idle connections; relay wake-ups coalesced but never lost."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from outbox.pooling import AsyncIdleCheck, IdleCheck
from outbox.relay import OUTBOX_CHANNEL
from outbox.wakeup import AsyncRelayWakeup, RelayWakeup
from tests.waiting import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _backend_pid(pool: ConnectionPool[Any]) -> int:
    with pool.connection() as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        return int(row[0])


def test_a_connection_just_given_back_is_not_checked_an_idle_one_is(database_url: str) -> None:
    clock = FakeClock()
    idle = IdleCheck(idle_seconds=1.0, clock=clock)
    with ConnectionPool(database_url, min_size=1, max_size=1, check=idle.check) as pool:
        _backend_pid(pool)
        checks_after_first = idle.checks  # a new connection is checked once
        assert checks_after_first == 1
        clock.now += 0.5
        _backend_pid(pool)
        assert idle.checks == checks_after_first  # checked out 0.5 s ago: no round trip
        clock.now += 1.5
        _backend_pid(pool)
        assert idle.checks == checks_after_first + 1  # idle 1.5 s: checked


def test_an_idle_connection_whose_server_side_died_is_replaced(database_url: str) -> None:
    clock = FakeClock()
    idle = IdleCheck(idle_seconds=1.0, clock=clock)
    with (
        ConnectionPool(database_url, min_size=1, max_size=1, check=idle.check) as pool,
        psycopg.connect(database_url, autocommit=True) as admin,
    ):
        dead = _backend_pid(pool)
        admin.execute("SELECT pg_terminate_backend(%s)", [dead])
        clock.now += 5  # what a restart leaves behind: connections idle across it
        assert _backend_pid(pool) != dead  # the check discarded it; no error reached us


def test_async_idle_check_skips_recent_connections(database_url: str) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        idle = AsyncIdleCheck(idle_seconds=1.0, clock=clock)
        async with AsyncConnectionPool(
            database_url, min_size=1, max_size=1, check=idle.check
        ) as pool:
            for _ in range(3):
                async with pool.connection() as conn:
                    await conn.execute("SELECT 1")
            assert idle.checks == 1
            clock.now += 2
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
            assert idle.checks == 2

    asyncio.run(scenario())


class Listener:
    """Counts notifications on the relay's channel, on a thread of its own."""

    def __init__(self, url: str) -> None:
        self.count = 0
        self._conn = psycopg.connect(url, autocommit=True)
        self._conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for _ in self._conn.notifies(timeout=0.05):
                self.count += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()


@pytest.fixture
def listener(database_url: str) -> Any:
    lst = Listener(database_url)
    yield lst
    lst.close()


def test_many_pokes_make_few_notifies_and_the_last_poke_is_always_served(
    database_url: str, listener: Listener
) -> None:
    wakeup = RelayWakeup(
        lambda: psycopg.connect(database_url, autocommit=True), min_interval_seconds=0.05
    )
    wakeup.start()
    try:
        for _ in range(2000):
            wakeup.poke()
        wait_until(lambda: listener.count >= 1, message="no wake-up arrived")
        assert wakeup.sent < 100  # coalesced: pokes far outnumber NOTIFYs
        # A poke after a quiet moment is served too (nothing is left waiting for a poll).
        before = listener.count
        wakeup.poke()
        wait_until(lambda: listener.count > before, message="the later poke was not served")
    finally:
        wakeup.stop()


def test_wakeup_survives_a_lost_connection(database_url: str, listener: Listener) -> None:
    conns: list[psycopg.Connection[Any]] = []

    def connect() -> psycopg.Connection[Any]:
        conn = psycopg.connect(database_url, autocommit=True)
        conns.append(conn)
        return conn

    wakeup = RelayWakeup(connect, min_interval_seconds=0.01)
    wakeup.start()
    try:
        wakeup.poke()
        wait_until(lambda: listener.count >= 1, message="no first wake-up")
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [conns[0].info.backend_pid])
        # The poke that meets the dead connection is lost (polling covers it); the next works.
        before = listener.count

        def poked_and_served() -> bool:
            wakeup.poke()
            return listener.count > before

        wait_until(poked_and_served, message="wake-ups did not resume after reconnecting")
        assert len(conns) == 2
    finally:
        wakeup.stop()


def test_async_wakeup_coalesces_and_serves_the_last_poke(
    database_url: str, listener: Listener
) -> None:
    async def scenario() -> None:
        async def connect() -> psycopg.AsyncConnection[Any]:
            return await psycopg.AsyncConnection.connect(database_url, autocommit=True)

        wakeup = AsyncRelayWakeup(connect, min_interval_seconds=0.05)
        wakeup.start()
        try:
            for _ in range(500):
                wakeup.poke()
                await asyncio.sleep(0)
            await asyncio.to_thread(
                wait_until, lambda: listener.count >= 1, message="no wake-up arrived"
            )
            assert wakeup.sent < 50
        finally:
            await wakeup.stop()

    asyncio.run(scenario())


def test_async_wakeup_keeps_one_connection_and_survives_losing_it(
    database_url: str, listener: Listener
) -> None:
    async def scenario() -> None:
        conns: list[psycopg.AsyncConnection[Any]] = []

        async def connect() -> psycopg.AsyncConnection[Any]:
            conns.append(await psycopg.AsyncConnection.connect(database_url, autocommit=True))
            return conns[-1]

        async def poke_until_served(before: int) -> None:
            for _ in range(200):
                wakeup.poke()
                await asyncio.sleep(0.02)
                if listener.count > before:
                    return
            raise AssertionError("no wake-up arrived")

        wakeup = AsyncRelayWakeup(connect, min_interval_seconds=0.01)
        wakeup.start()
        try:
            for _ in range(3):
                await poke_until_served(listener.count)
            assert len(conns) == 1, "one connection for every NOTIFY"
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as a:
                await a.execute("SELECT pg_terminate_backend(%s)", [conns[0].info.backend_pid])
            # The poke that meets the dead connection is lost (polling covers it); then it
            # connects again.
            await poke_until_served(listener.count)
            assert len(conns) == 2
        finally:
            await wakeup.stop()
        assert all(c.closed for c in conns), "stop closes its connection"

    asyncio.run(scenario())


_TERMINATE = "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS t(pid)"
_ALIVE = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s::int[])"


def _terminate_backends(admin: psycopg.Connection[Any], pids: list[int]) -> None:
    """Terminate them and wait until they are gone (termination is a signal: a backend exits
    a moment later, and a check in that moment would still pass)."""
    admin.execute(_TERMINATE, [pids])
    deadline = time.monotonic() + 10
    while (admin.execute(_ALIVE, [pids]).fetchone() or (0,))[0]:
        assert time.monotonic() < deadline, "terminated backends did not exit"
        time.sleep(0.01)


def test_one_dead_connection_gets_every_idle_dead_one_replaced_at_once(database_url: str) -> None:
    # Backends terminated under a pool of idle connections: the first checkout that finds one
    # dead checks them all, so it is the only checkout attempt that fails. Without that, each
    # dead connection fails an attempt of its own, with a growing pause before the next.
    clock = FakeClock()
    idle = IdleCheck(idle_seconds=1.0, clock=clock)
    with (
        ConnectionPool(database_url, min_size=4, max_size=4, check=idle.check) as pool,
        psycopg.connect(database_url, autocommit=True) as admin,
    ):
        idle.watch(pool)
        pool.wait(timeout=10)
        held = [pool.getconn() for _ in range(4)]
        pids = [c.info.backend_pid for c in held]
        for conn in held:
            pool.putconn(conn)
        _terminate_backends(admin, pids)
        clock.now += 5

        assert _backend_pid(pool) not in pids

        assert idle.broken == 1


def test_the_async_check_does_the_same(database_url: str) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        idle = AsyncIdleCheck(idle_seconds=1.0, clock=clock)
        async with AsyncConnectionPool(
            database_url, min_size=4, max_size=4, check=idle.check
        ) as pool:
            idle.watch(pool)
            await pool.wait(timeout=10)
            held = [await pool.getconn() for _ in range(4)]
            pids = [c.info.backend_pid for c in held]
            for conn in held:
                await pool.putconn(conn)
            with psycopg.connect(database_url, autocommit=True) as sync_admin:
                _terminate_backends(sync_admin, pids)
            clock.now += 5

            async with pool.connection() as conn:
                assert conn.info.backend_pid not in pids

            assert idle.broken == 1

    asyncio.run(scenario())
