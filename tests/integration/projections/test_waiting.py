"""Read-your-writes: a query waits, bounded, until the projection has passed a command's event."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from projections.runtime import WAKEUP_CHANNEL, save_checkpoint
from projections.waiting import wait_for_position, wait_for_position_async
from tests.integration.projections.support import (
    append_events,
    listening,
    relay_positions,
    running,
)
from tests.integration.projections.timeline import OPENED, CartTimeline
from tests.waiting import wait_until


def _waiting_on_notifications(url: str, pid: int) -> bool:
    """The waiter has LISTENed, checked once, and now sits idle in its wait."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT state = 'idle' AND query LIKE '%%LEFT JOIN projection.checkpoint%%'"
            " FROM pg_stat_activity WHERE pid = %s",
            [pid],
        ).fetchone()
    return bool(row and row[0])


@contextmanager
def _relay_once_waiter_waits(url: str, pid: int) -> Iterator[None]:
    """Relay (which wakes the runner) only once the waiter is blocked on its notifications."""
    errors: list[BaseException] = []

    def relay() -> None:
        try:
            wait_until(lambda: _waiting_on_notifications(url, pid))
            relay_positions(url)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=relay)
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout=10)
    assert errors == []


class TestWaitingForAPosition:
    def test_returns_true_as_soon_as_the_runner_passes_the_event(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        with running(database_url, [timeline], poll_interval=30):
            wait_until(lambda: listening(database_url, WAKEUP_CHANNEL) == 1)
            [position] = append_events(database_url, "cart-1", OPENED)
            with psycopg.connect(database_url, autocommit=True) as conn:
                started = time.monotonic()
                with _relay_once_waiter_waits(database_url, conn.info.backend_pid):
                    # Both poll intervals are long: only the NOTIFYs can make this prompt.
                    reached = wait_for_position(
                        conn, timeline.name, position, timeout=20, poll_interval=30
                    )
                elapsed = time.monotonic() - started
                channels = conn.execute("SELECT pg_listening_channels()").fetchall()
        assert reached
        assert elapsed < 5
        assert channels == [], "the connection goes back to its pool not listening"

    def test_returns_false_after_the_timeout_when_no_runner_catches_up(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        [position] = append_events(database_url, "cart-1", OPENED)
        relay_positions(database_url)
        with psycopg.connect(database_url) as conn:
            started = time.monotonic()
            reached = wait_for_position(conn, timeline.name, position, timeout=0.3)
            elapsed = time.monotonic() - started
        assert not reached
        assert 0.3 <= elapsed < 2

    def test_an_event_not_yet_relayed_is_not_reached_whatever_the_checkpoint(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        [position] = append_events(database_url, "cart-1", OPENED)
        with psycopg.connect(database_url) as conn:
            with conn.transaction():
                save_checkpoint(conn, timeline.name, 1_000)
            assert not wait_for_position(conn, timeline.name, position, timeout=0.1)
            relay_positions(database_url)
            assert wait_for_position(conn, timeline.name, position, timeout=0.1)

    def test_refuses_a_connection_inside_a_transaction(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        with psycopg.connect(database_url) as conn:
            conn.execute("SELECT 1")
            with pytest.raises(ValueError, match="outside a transaction"):
                wait_for_position(conn, timeline.name, 1, timeout=0.1)


class TestWaitingForAPositionAsync:
    def test_returns_true_as_soon_as_the_runner_passes_the_event(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        async def wait(position: int) -> tuple[bool, float]:
            aconn = psycopg.AsyncConnection.connect(database_url, autocommit=True)
            async with await aconn as conn:
                started = time.monotonic()
                with _relay_once_waiter_waits(database_url, conn.info.backend_pid):
                    reached = await wait_for_position_async(
                        conn, timeline.name, position, timeout=20, poll_interval=30
                    )
                return reached, time.monotonic() - started

        with running(database_url, [timeline], poll_interval=30):
            wait_until(lambda: listening(database_url, WAKEUP_CHANNEL) == 1)
            [position] = append_events(database_url, "cart-1", OPENED)
            reached, elapsed = asyncio.run(wait(position))
        assert reached
        assert elapsed < 5

    def test_returns_false_after_the_timeout(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        async def wait(position: int) -> bool:
            async with await psycopg.AsyncConnection.connect(database_url) as conn:
                return await wait_for_position_async(conn, timeline.name, position, timeout=0.3)

        [position] = append_events(database_url, "cart-1", OPENED)
        started = time.monotonic()
        assert not asyncio.run(wait(position))
        assert 0.3 <= time.monotonic() - started < 3
