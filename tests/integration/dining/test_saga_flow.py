"""The reservation saga end to end: HTTP → log → relay → pgmq → a real worker → every context.

The payment provider is the in-memory fake (``haengbok.payments.fake``); everything else is
real. Outcomes are awaited with deadlines, never with sleeps.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from api.dining.recommendations import suspend_restaurant
from haengbok.payments.fake import FakePaymentProvider
from haengbok.settings import Settings
from tests.integration.api.support import assert_problem
from tests.integration.dining.conftest import MovableClock, Workers
from tests.integration.dining.support import (
    Client,
    booking_status,
    customer,
    days_ahead,
    deposit_status,
    entry_status,
    events,
    owner,
    reservation_body,
    reserve,
    scalar,
    seats_taken,
    status,
    wait_saga,
    wait_status,
)
from tests.waiting import wait_until


def refunded(url: str, provider: FakePaymentProvider, reservation_id: str) -> int:
    """KRW the provider gave back on the reservation's charge."""
    charge = scalar(
        url,
        "SELECT charge_reference FROM deposit.deposit WHERE reservation_id = %s",
        reservation_id,
    )
    return provider.refunded_amount(charge)


def confirmed(client: Client, settings: Settings, url: str, restaurant: dict[str, Any]) -> str:
    rid = reserve(client, customer(settings), restaurant["restaurant_id"])
    wait_status(url, rid, "CONFIRMED")
    return rid


class TestConfirmed:
    def test_a_keyed_retry_that_waits_says_it_was_replayed(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        provider: FakePaymentProvider,
        restaurant: dict[str, Any],
    ) -> None:
        workers.start()
        body = reservation_body(restaurant["restaurant_id"])
        headers = {**customer(settings), "Prefer": "wait=5", "Idempotency-Key": "k-1"}

        first = client.post("/dining/reservations", json=body, headers=headers)
        again = client.post("/dining/reservations", json=body, headers=headers)

        assert (first.status_code, again.status_code) == (200, 200), again.text
        assert "idempotent-replayed" not in first.headers
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json() and again.json()["status"] == "CONFIRMED"
        assert provider.charge_count() == 1

    def test_a_paid_registered_and_seated_reservation_is_confirmed(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        provider: FakePaymentProvider,
        restaurant: dict[str, Any],
    ) -> None:
        workers.start()
        response = client.post(
            "/dining/reservations",
            json=reservation_body(restaurant["restaurant_id"]),
            headers={**customer(settings), "Prefer": "wait=5"},
        )

        assert response.status_code == 200, response.text
        assert response.headers["preference-applied"] == "wait=5"
        rid = response.json()["reservation_id"]
        assert response.json()["status"] == "CONFIRMED"
        assert (deposit_status(database_url, rid), entry_status(database_url, rid)) == (
            "PAID",
            "REGISTERED",
        )
        assert booking_status(database_url, rid) == "ACCEPTED"
        assert seats_taken(database_url, restaurant["restaurant_id"], days_ahead()) == 2
        assert provider.charge_count() == 1
        happened = events(database_url, rid)
        for earlier, later in [
            ("ReservationRequested", "TakeDeposit"),
            ("DepositPaid", "RegisterRecommendationEntry"),
            ("RecommendationEntryRegistered", "AcceptReservation"),
            ("DepositPaid", "ReservationDepositPaid"),
            ("ReservationAccepted", "ReservationConfirmed"),
        ]:
            assert happened.index(earlier) < happened.index(later), happened
        row = wait_saga(database_url, rid, "RUNNING")
        assert row["step"] == "confirmed"  # open until the visit, so a cancel can undo it
        # The saga's commands are on its own stream, the contexts' events on theirs: no two
        # writers share a stream, so appends never race for a version (outbox.sagas). Its
        # commands to its own context (record the deposit, confirm) ran in its transactions
        # and are not in the log.
        with psycopg.connect(database_url) as conn:
            streams = conn.execute(
                "SELECT kind, stream, count(*) FROM outbox.event WHERE correlation_id ="
                " (SELECT correlation_id FROM saga.instance WHERE saga_id = %s)"
                " GROUP BY 1, 2 ORDER BY 1, 2",
                [rid],
            ).fetchall()
        assert streams == [
            ("command", f"saga-dining_reservation-{rid}", 3),
            ("event", f"booking-{rid}", 1),
            ("event", f"deposit-{rid}", 1),
            ("event", f"recommendation-{rid}", 1),
            ("event", f"reservation-{rid}", 3),
        ]

    def test_a_charge_whose_answer_was_lost_is_not_charged_twice(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        provider: FakePaymentProvider,
        restaurant: dict[str, Any],
    ) -> None:
        provider.lose_next_answers(1)  # charged, but the handler sees a timeout and retries
        workers.start()
        rid = confirmed(client, settings, database_url, restaurant)
        assert provider.charge_count() == 1
        assert events(database_url, rid).count("DepositPaid") == 1

    def test_a_provider_that_is_down_for_a_while_only_delays_the_deposit(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        provider: FakePaymentProvider,
        restaurant: dict[str, Any],
    ) -> None:
        provider.fail_next(3)
        workers.start()
        rid = confirmed(client, settings, database_url, restaurant)
        assert provider.charge_count() == 1
        assert deposit_status(database_url, rid) == "PAID"


class TestRejected:
    def test_a_declined_deposit_rejects_the_reservation(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        provider: FakePaymentProvider,
        restaurant: dict[str, Any],
    ) -> None:
        provider.decline_every_charge()
        workers.start()
        response = client.post(
            "/dining/reservations",
            json=reservation_body(restaurant["restaurant_id"]),
            headers={**customer(settings), "Prefer": "wait=5"},
        )

        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "REJECTED"
        assert body["status_reason"].startswith("the deposit failed: ")
        rid = body["reservation_id"]
        assert deposit_status(database_url, rid) == "FAILED"
        assert entry_status(database_url, rid) is None
        assert booking_status(database_url, rid) is None
        saga = wait_saga(database_url, rid, "COMPENSATED")
        assert saga["state"]["failure_reason"] == body["status_reason"]

    def test_a_rejected_recommendation_entry_refunds_and_rejects(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        provider: FakePaymentProvider,
        restaurant: dict[str, Any],
    ) -> None:
        with psycopg.connect(database_url) as conn:
            suspend_restaurant(conn, restaurant["restaurant_id"], "under review")
        workers.start()
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])

        wait_status(database_url, rid, "REJECTED")
        wait_saga(database_url, rid, "COMPENSATED")
        assert deposit_status(database_url, rid) == "REFUNDED"
        assert refunded(database_url, provider, rid) == 10_000
        assert entry_status(database_url, rid) is None
        assert booking_status(database_url, rid) is None
        reason = scalar(
            database_url,
            "SELECT status_reason FROM reservation.reservation WHERE reservation_id = %s",
            rid,
        )
        assert "under review" in reason

    def test_no_seats_left_deletes_the_entry_refunds_and_rejects(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        provider: FakePaymentProvider,
        restaurant: dict[str, Any],
    ) -> None:
        workers.start()
        full = reserve(client, customer(settings, "bob"), restaurant["restaurant_id"], party_size=3)
        wait_status(database_url, full, "CONFIRMED")

        rid = reserve(client, customer(settings), restaurant["restaurant_id"], party_size=2)

        wait_status(database_url, rid, "REJECTED")
        wait_saga(database_url, rid, "COMPENSATED")
        assert "no seats left" in scalar(
            database_url,
            "SELECT status_reason FROM reservation.reservation WHERE reservation_id = %s",
            rid,
        )
        assert (entry_status(database_url, rid), deposit_status(database_url, rid)) == (
            "DELETED",
            "REFUNDED",
        )
        assert refunded(database_url, provider, rid) == 10_000
        assert seats_taken(database_url, restaurant["restaurant_id"], days_ahead()) == 3
        happened = events(database_url, rid)
        assert happened.index("RecommendationEntryDeleted") < happened.index("RefundDeposit")


class TestCancelAfterConfirmation:
    def test_refunds_once_releases_the_seats_and_deletes_the_entry(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        provider: FakePaymentProvider,
        restaurant: dict[str, Any],
    ) -> None:
        workers.start()
        rid = confirmed(client, settings, database_url, restaurant)

        response = client.post(f"/dining/reservations/{rid}/cancel", headers=customer(settings))

        assert response.status_code == 202
        row = wait_saga(database_url, rid, "COMPENSATED")
        assert row["state"]["failure_reason"] == "cancelled by the customer"
        assert status(database_url, rid) == "CANCELLED"
        assert (booking_status(database_url, rid), entry_status(database_url, rid)) == (
            "RELEASED",
            "DELETED",
        )
        assert deposit_status(database_url, rid) == "REFUNDED"
        assert refunded(database_url, provider, rid) == 10_000
        assert seats_taken(database_url, restaurant["restaurant_id"], days_ahead()) == 0
        happened = events(database_url, rid)
        assert happened.count("DepositRefunded") == 1
        # Undone newest first: seats, then the entry, then the money.
        order = [happened.index(t) for t in ("ReservationReleased", "RecommendationEntryDeleted")]
        assert order == sorted(order) and order[-1] < happened.index("RefundDeposit")


class TestVisit:
    def test_a_no_show_forfeits_the_deposit(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        provider: FakePaymentProvider,
        restaurant: dict[str, Any],
        clock: MovableClock,
    ) -> None:
        workers.start()
        rid = confirmed(client, settings, database_url, restaurant)
        clock.advance(dt.timedelta(days=2))
        # Too late to cancel: that would hand a no-show their deposit back.
        late = client.post(f"/dining/reservations/{rid}/cancel", headers=customer(settings))
        assert "slot has begun" in assert_problem(late, 409)["detail"]

        response = client.post(
            f"/dining/reservations/{rid}/visit",
            json={"outcome": "NO_SHOW"},
            headers=owner(settings),
        )

        assert response.status_code == 202, response.text
        assert response.json()["status"] == "NO_SHOW"
        wait_until(lambda: deposit_status(database_url, rid) == "FORFEITED")
        assert wait_saga(database_url, rid, "COMPLETED")["step"] == "no_show"
        assert refunded(database_url, provider, rid) == 0
        again = client.post(f"/dining/reservations/{rid}/cancel", headers=customer(settings))
        assert_problem(again, 409)

    def test_a_completed_visit_is_rated_once_by_its_customer(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        restaurant: dict[str, Any],
        clock: MovableClock,
    ) -> None:
        workers.start()
        rid = confirmed(client, settings, database_url, restaurant)
        too_early = client.post(
            f"/dining/reservations/{rid}/visit",
            json={"outcome": "COMPLETED"},
            headers=owner(settings),
        )
        assert_problem(too_early, 409)
        clock.advance(dt.timedelta(days=2))
        visit = client.post(
            f"/dining/reservations/{rid}/visit",
            json={"outcome": "COMPLETED"},
            headers=owner(settings),
        )
        assert visit.status_code == 202
        wait_saga(database_url, rid, "COMPLETED")
        rating = {"score": 5, "comment": "갈비가 최고"}

        stranger = client.post(
            f"/dining/reservations/{rid}/rating", json=rating, headers=customer(settings, "bob")
        )
        first = client.post(
            f"/dining/reservations/{rid}/rating", json=rating, headers=customer(settings)
        )
        second = client.post(
            f"/dining/reservations/{rid}/rating", json={"score": 1}, headers=customer(settings)
        )

        assert_problem(stranger, 404)
        assert first.status_code == 202, first.text
        assert first.json()["score"] == 5
        assert first.headers["location"] == f"/dining/reservations/{rid}"
        assert assert_problem(second, 409)["type"] == "urn:haengbok:problem:dining-already-rated"
        assert events(database_url, rid).count("ReservationRated") == 1
        assert deposit_status(database_url, rid) == "PAID"  # a visit keeps the deposit as is

    def test_a_rating_given_before_a_no_show_is_withdrawn(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        workers: Workers,
        restaurant: dict[str, Any],
        clock: MovableClock,
    ) -> None:
        workers.start()
        rid = confirmed(client, settings, database_url, restaurant)
        clock.advance(dt.timedelta(days=2))
        rated = client.post(
            f"/dining/reservations/{rid}/rating", json={"score": 4}, headers=customer(settings)
        )
        assert rated.status_code == 202, rated.text

        visit = client.post(
            f"/dining/reservations/{rid}/visit",
            json={"outcome": "NO_SHOW"},
            headers=owner(settings),
        )

        assert visit.status_code == 202, visit.text
        happened = events(database_url, rid)
        assert happened.index("VisitRecorded") < happened.index("RatingWithdrawn")
        with psycopg.connect(database_url) as conn:
            (payload,) = conn.execute(
                "SELECT payload FROM outbox.event WHERE type = 'reservation.RatingWithdrawn'"
                " AND stream = %s",
                [f"reservation-{rid}"],
            ).fetchone() or (None,)
        assert payload["score"] == 4
        assert payload["restaurant_id"] == restaurant["restaurant_id"]
        wait_until(lambda: deposit_status(database_url, rid) == "FORFEITED")
