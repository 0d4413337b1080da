"""Slot capacity under concurrency: the database decides who gets the last seats."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from haengbok.payments.fake import FakePaymentProvider
from haengbok.settings import Settings
from tests.integration.dining.conftest import Workers
from tests.integration.dining.support import (
    Client,
    count_rows,
    customer,
    days_ahead,
    deposit_status,
    entry_status,
    owner,
    register_restaurant,
    reserve,
    seats_taken,
    status,
    wait_saga,
)
from tests.waiting import wait_until

CAPACITY = 5
CUSTOMERS = 12


class TestLastSeats:
    def test_customers_racing_for_a_slot_get_exactly_its_seats_and_the_rest_their_money(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        provider: FakePaymentProvider,
    ) -> None:
        place = register_restaurant(client, owner(settings), capacity_per_slot=CAPACITY)
        workers.start()

        def one_customer(n: int) -> str:
            return reserve(
                client, customer(settings, f"guest-{n}"), place["restaurant_id"], party_size=1
            )

        with ThreadPoolExecutor(max_workers=6) as pool:
            ids = list(pool.map(one_customer, range(CUSTOMERS)))

        def decided() -> dict[str, list[str]] | None:
            by_status: dict[str, list[str]] = {}
            for rid in ids:
                by_status.setdefault(str(status(database_url, rid)), []).append(rid)
            return by_status if set(by_status) <= {"CONFIRMED", "REJECTED"} else None

        outcome = wait_until(decided, timeout=30, message=lambda: str(decided()))
        assert len(outcome["CONFIRMED"]) == CAPACITY
        assert len(outcome["REJECTED"]) == CUSTOMERS - CAPACITY
        assert seats_taken(database_url, place["restaurant_id"], days_ahead()) == CAPACITY
        for rid in outcome["REJECTED"]:
            wait_saga(database_url, rid, "COMPENSATED")
            assert (deposit_status(database_url, rid), entry_status(database_url, rid)) == (
                "REFUNDED",
                "DELETED",
            )
        assert count_rows(database_url, "restaurant.booking") == CAPACITY
        assert count_rows(database_url, "ops.parked_message") == 0


class TestCapacityConstraint:
    def test_the_database_refuses_more_seats_than_the_slot_has(
        self, client: Client, settings: Settings, database_url: str
    ) -> None:
        """Even a writer that skips the application code cannot overbook."""
        place = register_restaurant(client, owner(settings), capacity_per_slot=2)
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "INSERT INTO restaurant.slot_booking VALUES (%s, %s, '19:00', 2, 2)",
                [place["restaurant_id"], days_ahead()],
            )
            with pytest.raises(psycopg.errors.CheckViolation, match="slot_booking_capacity"):
                conn.execute(
                    "UPDATE restaurant.slot_booking SET seats_taken = seats_taken + 1"
                    " WHERE restaurant_id = %s",
                    [place["restaurant_id"]],
                )
