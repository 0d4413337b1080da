"""The saga when a context is down or slow: cancels mid-way, late answers, deadlines.

A context is "down" when no worker runs its subscriber: its messages wait in its queue. It
"comes back" when a second worker starts with only that subscriber, as a separate deployment
would.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from api.dining.subscribers import DEPOSIT, RECOMMENDATION, RESTAURANT
from haengbok.payments.fake import FakePaymentProvider
from haengbok.settings import Settings
from tests.integration.dining.conftest import Workers
from tests.integration.dining.support import (
    Client,
    booking_status,
    count_rows,
    customer,
    days_ahead,
    deposit_status,
    entry_status,
    events,
    reserve,
    saga,
    scalar,
    seats_taken,
    status,
    wait_saga,
    wait_status,
)
from tests.waiting import wait_until


def wait_step(url: str, reservation_id: str, step: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_until(
        lambda: (row := saga(url, reservation_id)) and row["step"] == step and row,
        message=lambda: f"saga {reservation_id}: {saga(url, reservation_id)}",
    )
    return found


def deadline_messages(url: str) -> list[int]:
    """msg_ids of the saga's pending deadline messages (FIFO groups ``deadline-...``)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT msg_id FROM pgmq.q_saga_dining_reservation"
            " WHERE headers ->> 'x-pgmq-group' LIKE 'deadline-%' ORDER BY msg_id"
        ).fetchall()
    return [int(r[0]) for r in rows]


def cancel(client: Client, settings: Settings, reservation_id: str) -> None:
    response = client.post(
        f"/dining/reservations/{reservation_id}/cancel", headers=customer(settings)
    )
    assert response.status_code == 202, response.text


def refund_count(url: str, reservation_id: str) -> int:
    return events(url, reservation_id).count("DepositRefunded")


class TestRestaurantDown:
    @pytest.mark.parametrize("step_deadline_ms", [3_000])
    def test_reservations_are_paid_meanwhile_and_confirmed_when_it_is_back(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        restaurant: dict[str, Any],
    ) -> None:
        # Short deadlines for the other steps: the restaurant's step must not use them.
        workers.start(without={RESTAURANT})
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])

        wait_status(database_url, rid, "DEPOSIT_PAID")
        row = wait_step(database_url, rid, "awaiting_restaurant")
        assert entry_status(database_url, rid) == "REGISTERED"
        # It may wait until the reserved slot begins (tomorrow evening), not a few seconds.
        assert row["deadline_at"] - row["updated_at"] > dt.timedelta(hours=12)

        workers.start(only={RESTAURANT})

        wait_status(database_url, rid, "CONFIRMED")
        assert booking_status(database_url, rid) == "ACCEPTED"

    @pytest.mark.parametrize("step_deadline_ms", [2_000])
    def test_steps_that_answer_in_time_send_no_deadline_message(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        restaurant: dict[str, Any],
    ) -> None:
        worker = workers.start(without={RESTAURANT})
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])

        row = wait_step(database_url, rid, "awaiting_restaurant")
        # The deposit and recommendation steps had 2 s deadlines and answered in time: the
        # row held each deadline, and no message was ever sent for one.
        assert row["deadline_name"] == "restaurant"
        assert (row["deadline_msg_id"], row["deadline_msg_at"]) == (None, None)
        assert deadline_messages(database_url) == []

        workers.start(only={RESTAURANT})
        wait_status(database_url, rid, "CONFIRMED")
        done = wait_saga(database_url, rid, "RUNNING")
        assert (done["deadline_at"], done["deadline_msg_id"]) == (None, None)
        assert deadline_messages(database_url) == []
        assert worker.deadlines.fired_total == 0

    def test_a_cancel_while_it_is_down_releases_the_seats_it_takes_later(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        provider: FakePaymentProvider,
        restaurant: dict[str, Any],
    ) -> None:
        workers.start(without={RESTAURANT})
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])
        wait_step(database_url, rid, "awaiting_restaurant")

        cancel(client, settings, rid)
        wait_saga(database_url, rid, "COMPENSATED")
        assert (entry_status(database_url, rid), deposit_status(database_url, rid)) == (
            "DELETED",
            "REFUNDED",
        )
        workers.start(only={RESTAURANT})

        wait_until(lambda: booking_status(database_url, rid) == "RELEASED")
        assert seats_taken(database_url, restaurant["restaurant_id"], days_ahead()) == 0
        assert status(database_url, rid) == "CANCELLED"
        assert refund_count(database_url, rid) == 1


class TestCancelMidSaga:
    def test_a_deposit_paid_after_the_cancel_is_refunded(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        provider: FakePaymentProvider,
        restaurant: dict[str, Any],
    ) -> None:
        workers.start(without={DEPOSIT})
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])
        wait_step(database_url, rid, "taking_deposit")

        cancel(client, settings, rid)
        wait_saga(database_url, rid, "COMPENSATED")  # nothing had finished: nothing to undo
        workers.start(only={DEPOSIT})

        wait_until(lambda: deposit_status(database_url, rid) == "REFUNDED")
        assert provider.charge_count() == 1
        assert refund_count(database_url, rid) == 1
        assert entry_status(database_url, rid) is None
        assert booking_status(database_url, rid) is None
        assert status(database_url, rid) == "CANCELLED"

    def test_a_cancel_while_the_entry_is_pending_refunds_and_deletes_the_late_entry(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        restaurant: dict[str, Any],
    ) -> None:
        workers.start(without={RECOMMENDATION})
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])
        wait_status(database_url, rid, "DEPOSIT_PAID")

        cancel(client, settings, rid)
        wait_saga(database_url, rid, "COMPENSATED")
        assert deposit_status(database_url, rid) == "REFUNDED"
        workers.start(only={RECOMMENDATION})

        wait_until(lambda: entry_status(database_url, rid) == "DELETED")
        assert booking_status(database_url, rid) is None
        assert refund_count(database_url, rid) == 1

    def test_a_cancel_racing_the_whole_saga_always_settles(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        provider: FakePaymentProvider,
        restaurant: dict[str, Any],
    ) -> None:
        """Cancels sent while the saga runs at full speed land at whatever step it is in;
        every one of them must end with the money back, no seats held and no entry."""
        workers.start()
        ids = [
            reserve(client, customer(settings), restaurant["restaurant_id"], party_size=1)
            for _ in range(4)
        ]
        for rid in ids:
            cancel(client, settings, rid)

        for rid in ids:
            wait_saga(database_url, rid, "COMPENSATED")
            wait_until(
                lambda rid=rid: (
                    deposit_status(database_url, rid) in ("REFUNDED", None)
                    and entry_status(database_url, rid) in ("DELETED", None)
                    and booking_status(database_url, rid) in ("RELEASED", None)
                ),
                message=lambda rid=rid: f"{rid}: {events(database_url, rid)}",
            )
            assert status(database_url, rid) == "CANCELLED"
            assert refund_count(database_url, rid) <= 1
        assert seats_taken(database_url, restaurant["restaurant_id"], days_ahead()) == 0
        assert count_rows(database_url, "ops.parked_message") == 0


class TestDeadline:
    @pytest.mark.parametrize("step_deadline_ms", [300])
    def test_a_deposit_context_that_does_not_answer_gets_the_reservation_rejected(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        provider: FakePaymentProvider,
        restaurant: dict[str, Any],
    ) -> None:
        workers.start(without={DEPOSIT})
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])

        wait_status(database_url, rid, "REJECTED")
        reason = scalar(
            database_url,
            "SELECT status_reason FROM reservation.reservation WHERE reservation_id = %s",
            rid,
        )
        assert reason == "the deposit context did not answer in time"
        workers.start(only={DEPOSIT})  # the late charge goes through, and is given back

        wait_until(lambda: deposit_status(database_url, rid) == "REFUNDED")
        assert provider.charge_count() == 1
        assert status(database_url, rid) == "REJECTED"
