"""Dining under worker crashes: every reservation settles, and the money adds up at the
provider (one charge per reservation, one refund per refunded deposit, no seat oversold)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from api.dining.reservations import cancel_reservation, request_reservation
from api.dining.restaurants import register_restaurant
from api.dining.subscribers import reservation_saga
from haengbok.bootstrap import record_routes
from haengbok.settings import Settings
from outbox.envelope import MessageContext
from tests.waiting import wait_until

pytestmark = pytest.mark.fault
SETTLED = ("CONFIRMED", "REJECTED", "CANCELLED")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class System:
    """The payment sandbox and worker processes (`haengbok worker`), killable."""

    def __init__(self, url: str) -> None:
        self.payment_url = f"http://127.0.0.1:{_free_port()}"
        self.env = {**os.environ, "DATABASE_URL": url, "HAENGBOK_PAYMENT_URL": self.payment_url,
                    "HAENGBOK_WORKER_THREADS": "4", "HAENGBOK_VISIBILITY_TIMEOUT_SECONDS": "5",
                    "HAENGBOK_ACTOR_TIME_LIMIT_SECONDS": "4"}  # fmt: skip
        port = self.payment_url.rsplit(":", 1)[1]
        self.sandbox = self._spawn(["payments-sandbox", "--host", "127.0.0.1", "--port", port])
        wait_until(self._sandbox_up, timeout=20, message="sandbox answers")
        self.workers = [self._spawn(["worker"]) for _ in range(2)]
        self.kills = 0

    def _spawn(self, args: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "haengbok.cli", *args], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def _sandbox_up(self) -> bool:
        try:
            return httpx.get(f"{self.payment_url}/admin/behaviour", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill_a_worker(self, rng: random.Random) -> None:
        victim = rng.choice(self.workers)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.workers.remove(victim)
        self.workers.append(self._spawn(["worker"]))
        self.kills += 1

    def stats(self) -> dict[str, int]:
        return dict(httpx.get(f"{self.payment_url}/admin/stats", timeout=5).json())

    def stop(self) -> None:
        for proc in [*self.workers, self.sandbox]:
            proc.send_signal(signal.SIGTERM)
        for proc in [*self.workers, self.sandbox]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def system(database_url: str) -> Iterator[System]:
    record_routes(Settings(), database_url)
    running = System(database_url)
    yield running
    running.stop()


async def _book(url: str, count: int, cancel_every: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    now = dt.datetime.now(dt.UTC)
    day = (now + dt.timedelta(days=3)).date()
    saga = reservation_saga()  # the workers' default step deadline, as the API would have
    async with await psycopg.AsyncConnection.connect(url) as conn:
        async with conn.transaction():
            restaurant, _ = await register_restaurant(
                conn, MessageContext.new("owner"), owner="owner", name="Crash Diner",
                cuisine="korean", slots=["18:00", "19:00"], capacity_per_slot=20,
                deposit_amount=10_000,
            )  # fmt: skip
        ids = []
        for i in range(count):
            async with conn.transaction():
                reservation, _ = await request_reservation(
                    conn, MessageContext.new(f"c{i}"), customer=f"c{i}",
                    restaurant_id=restaurant.restaurant_id, date=day,
                    slot=["18:00", "19:00"][i % 2], party_size=1 + i % 3, now=now,
                    saga=saga,
                )  # fmt: skip
            ids.append(reservation.reservation_id)
            if i % cancel_every == cancel_every - 1:  # some cancel while their saga runs
                async with conn.transaction():
                    await cancel_reservation(
                        conn, MessageContext.new(f"c{i}"), reservation_id=reservation.reservation_id,
                        customer=f"c{i}", now=now,
                    )  # fmt: skip
        await conn.execute("SELECT pg_notify('haengbok_outbox', '')")
    return restaurant.restaurant_id, ids


def _statuses(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute(
            "SELECT status, count(*) FROM reservation.reservation GROUP BY status"
        ).fetchall())  # fmt: skip


def _all_settled(url: str, total: int) -> bool:
    statuses = _statuses(url)
    return sum(n for s, n in statuses.items() if s in SETTLED) == total and _money_settled(url)


def _money_settled(url: str) -> bool:
    """Every REJECTED or CANCELLED reservation whose deposit was paid got it back."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM reservation.reservation r JOIN deposit.deposit d USING"
            " (reservation_id) WHERE r.status IN ('REJECTED', 'CANCELLED') AND d.status = 'PAID'"
        ).fetchone()
    return row == (0,)


class TestDiningUnderCrashes:
    def test_every_reservation_settles_and_the_money_adds_up(
        self, database_url: str, system: System
    ) -> None:
        total = 120
        restaurant_id, _ = asyncio.run(_book(database_url, total, cancel_every=7))
        rng = random.Random(11)
        deadline = time.monotonic() + 60
        # The first kill at once, then every 0.15-0.5 s: the workers settle a backlog of this
        # size in about a second, and the kills must land while they work.
        while not _all_settled(database_url, total) and time.monotonic() < deadline:
            if system.kills < 6:
                system.kill_a_worker(rng)
            time.sleep(rng.uniform(0.15, 0.5))  # chaos interval, not a wait for an outcome
        wait_until(
            lambda: _all_settled(database_url, total), timeout=90,
            message=lambda: f"all settled; statuses {_statuses(database_url)}",
        )  # fmt: skip
        assert system.kills >= 3
        with psycopg.connect(database_url) as conn:
            unpaid_confirmed = conn.execute(
                "SELECT count(*) FROM reservation.reservation r LEFT JOIN deposit.deposit d"
                " USING (reservation_id) WHERE r.status = 'CONFIRMED'"
                " AND d.status IS DISTINCT FROM 'PAID'"
            ).fetchone()
            deposits = dict(conn.execute(
                "SELECT status, count(*) FROM deposit.deposit GROUP BY status"
            ).fetchall())  # fmt: skip
            seats = conn.execute(
                "SELECT b.slot, b.seats_taken, b.capacity, (SELECT coalesce(sum(r.party_size), 0)"
                " FROM reservation.reservation r WHERE r.restaurant_id = b.restaurant_id"
                " AND r.slot = b.slot AND r.status = 'CONFIRMED')"
                " FROM restaurant.slot_booking b WHERE b.restaurant_id = %s",
                [restaurant_id],
            ).fetchall()
            parked = conn.execute("SELECT count(*) FROM ops.parked_message").fetchone()
            sagas = dict(conn.execute(
                "SELECT status, count(*) FROM saga.instance GROUP BY status"
            ).fetchall())  # fmt: skip
        stats = system.stats()
        statuses = _statuses(database_url)
        assert unpaid_confirmed == (0,), "no confirmed reservation without a paid deposit"
        assert statuses.get("CONFIRMED", 0) > 0 and statuses.get("REJECTED", 0) > 0, statuses
        assert stats["charges"] == sum(deposits.values()), "one charge per reservation"
        assert stats["refunds"] == deposits.get("REFUNDED", 0), "each refund exactly once"
        for slot, taken, capacity, confirmed_seats in seats:
            assert taken == confirmed_seats <= capacity, (slot, taken, capacity, confirmed_seats)
        assert parked == (0,)
        assert "PARKED" not in sagas, sagas
