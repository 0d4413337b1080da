"""Several relays (one per worker process): one leads and is woken by NOTIFY, the others stand
by without listening, and one of them takes over when the leader's session ends."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from outbox.envelope import MessageContext, NewMessage
from outbox.log import append
from outbox.relay import OUTBOX_CHANNEL, Relay, Route, sync_routes
from tests.integration.projections.support import listening
from tests.waiting import wait_until

ORDERS = Route("orders_policy", "orders_policy", frozenset({"shop.OrderPlaced"}), True)


def _start(url: str) -> tuple[Relay, Callable[[], None]]:
    pool: ConnectionPool[Any] = ConnectionPool(url, min_size=1, max_size=2, open=True)
    # While it leads, only a NOTIFY wakes it before 30 s; a standby looks every 0.2 s.
    relay = Relay(pool, url, idle_poll_seconds=30, standby_poll_seconds=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), name="relay")
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(timeout=35)
        pool.close()
        assert not thread.is_alive()

    return relay, halt


def _append_and_wake(url: str, stream: str) -> None:
    with psycopg.connect(url) as conn:
        append(conn, [NewMessage("shop.OrderPlaced", stream, {})], MessageContext.new("test"))
        conn.commit()
        conn.execute("SELECT pg_notify(%s, '')", [OUTBOX_CHANNEL])


def _unrelayed(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM outbox.event WHERE global_position IS NULL"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_one_relay_leads_and_a_standby_takes_over_when_its_session_ends(
    database_url: str,
) -> None:
    with psycopg.connect(database_url) as conn:
        sync_routes(conn, [ORDERS])
    first, halt_first = _start(database_url)
    halt_second = None
    try:
        wait_until(lambda: first.standby.leading)
        wait_until(lambda: listening(database_url, OUTBOX_CHANNEL) == 1)
        second, halt_second = _start(database_url)
        _append_and_wake(database_url, "order-1")
        wait_until(lambda: _unrelayed(database_url) == 0, timeout=5)
        # The leader, woken by the NOTIFY, or the standby's once-per-poll batch. A relay counts
        # a batch after its commit, so the count may trail the table by a moment.
        wait_until(lambda: first.relayed_total + second.relayed_total == 1, timeout=5)
        assert not second.standby.leading
        assert listening(database_url, OUTBOX_CHANNEL) == 1, "a standby does not LISTEN"

        halt_first()  # its connections close, and the lead with them
        wait_until(lambda: second.standby.leading, message="the standby takes the lead")
        wait_until(lambda: listening(database_url, OUTBOX_CHANNEL) == 1)
        _append_and_wake(database_url, "order-2")
        wait_until(lambda: _unrelayed(database_url) == 0, timeout=5)
        wait_until(lambda: first.relayed_total + second.relayed_total == 2, timeout=5)
    finally:
        halt_first()
        if halt_second is not None:
            halt_second()
