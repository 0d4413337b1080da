"""The reservation commands over HTTP, without a worker: validation, authorization and
idempotency. A refused command writes nothing (no row, no event)."""

from __future__ import annotations

import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from psycopg import sql

from api.app import create_app
from api.dining.commands import controllers
from api.dining.subscribers import DEPOSIT, RECOMMENDATION, RESTAURANT, SAGA
from haengbok.bootstrap import problems
from haengbok.settings import Settings
from tests.integration.api.support import assert_problem
from tests.integration.dining.conftest import MovableClock
from tests.integration.dining.support import (
    Client,
    count_rows,
    customer,
    days_ahead,
    events,
    owner,
    register_restaurant,
    reservation_body,
    reserve,
    status,
)
from tests.waiting import wait_until


@pytest.fixture
def restaurant(client: Client, settings: Settings) -> dict[str, Any]:
    return register_restaurant(client, owner(settings), capacity_per_slot=4)


def _reservations(url: str) -> int:
    return count_rows(url, "reservation.reservation")


class TestRequest:
    def test_answers_202_pending_and_starts_the_saga(
        self, client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        day = days_ahead(3)
        body = reservation_body(restaurant["restaurant_id"], date=day.isoformat(), party_size=4)

        response = client.post("/dining/reservations", json=body, headers=customer(settings))

        assert response.status_code == 202, response.text
        accepted = response.json()
        rid = accepted["reservation_id"]
        assert response.headers["location"] == f"/dining/reservations/{rid}"
        assert (accepted["status"], accepted["customer"], accepted["deposit_amount"]) == (
            "PENDING",
            "alice",
            10_000,
        )
        assert (accepted["restaurant_name"], accepted["date"], accepted["party_size"]) == (
            "Haengbok BBQ",
            day.isoformat(),
            4,
        )
        assert status(database_url, rid) == "PENDING"
        # The request started the saga itself: its instance waits for the deposit, whose
        # command went into the log with the event, caused by it.
        assert events(database_url, rid) == ["ReservationRequested", "TakeDeposit"]
        with psycopg.connect(database_url) as conn:
            requested, take = conn.execute(
                "SELECT position, actor, event_id, causation_id, correlation_id, stream"
                " FROM outbox.event WHERE correlation_id = (SELECT correlation_id"
                " FROM outbox.event WHERE stream = %s) ORDER BY position",
                [f"reservation-{rid}"],
            ).fetchall()
            saga = conn.execute(
                "SELECT status, step, version, deadline_name, deadline_at - started_at,"
                " correlation_id, state->>'restaurant_id' FROM saga.instance"
                " WHERE saga_id = %s",
                [rid],
            ).fetchone()
        assert requested[1] == "alice"
        assert take[0] == accepted["log_position"]  # the last one the request appended
        assert take[1:] == (
            "alice",
            take[2],
            requested[2],
            requested[4],
            f"saga-dining_reservation-{rid}",
        )
        assert saga is not None
        assert saga[:4] == ("RUNNING", "taking_deposit", 1, "deposit")
        assert dt.timedelta(minutes=9) < saga[4] <= dt.timedelta(minutes=10)
        assert saga[5:] == (requested[4], restaurant["restaurant_id"])

    def test_the_same_idempotency_key_reserves_once(
        self, client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        headers = {**customer(settings), "Idempotency-Key": str(uuid.uuid4())}
        body = reservation_body(restaurant["restaurant_id"])

        first = client.post("/dining/reservations", json=body, headers=headers)
        again = client.post("/dining/reservations", json=body, headers=headers)
        other = client.post("/dining/reservations", json={**body, "party_size": 3}, headers=headers)

        assert first.status_code == again.status_code == 202
        assert again.content == first.content
        assert_problem(other, 422)  # the key was used for another request
        assert _reservations(database_url) == 1
        # One saga, one deposit command: the key's transaction wrote them with the row.
        assert count_rows(database_url, "saga.instance") == 1
        rid = first.json()["reservation_id"]
        assert events(database_url, rid) == ["ReservationRequested", "TakeDeposit"]

    def test_prefer_wait_without_a_worker_answers_202_pending_in_time(
        self, client: Client, settings: Settings, restaurant: dict[str, Any]
    ) -> None:
        response = client.post(
            "/dining/reservations",
            json=reservation_body(restaurant["restaurant_id"]),
            headers={**customer(settings), "Prefer": "wait=0.3"},
        )
        assert response.status_code == 202
        assert response.json()["status"] == "PENDING"


class TestRefusedRequests:
    @pytest.mark.parametrize(
        ("overrides", "says"),
        [
            ({"restaurant_id": str(uuid.uuid4())}, "no restaurant"),
            ({"slot": "18:00"}, "no 18:00 slot"),
            ({"party_size": 5}, "parties of 1 to 4"),
            ({"date": (dt.date.today() - dt.timedelta(days=1)).isoformat()}, "already begun"),
        ],
    )
    def test_what_cannot_be_reserved_is_a_422_problem(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        restaurant: dict[str, Any],
        overrides: dict[str, Any],
        says: str,
    ) -> None:
        body = reservation_body(restaurant["restaurant_id"], **overrides)
        response = client.post("/dining/reservations", json=body, headers=customer(settings))
        problem = assert_problem(response, 422)
        assert problem["type"] == "urn:haengbok:problem:dining-not-possible"
        assert says in problem["detail"]
        assert _reservations(database_url) == 0
        assert count_rows(database_url, "saga.instance") == 0
        assert count_rows(database_url, "outbox.event") == 1  # the restaurant's own

    @pytest.mark.parametrize(
        "overrides",
        [
            {"party_size": 0},
            {"slot": "7pm"},
            {"date": "tomorrow"},
            {"restaurant_id": "not-a-uuid"},
            {"partysize": 2},
        ],
    )
    def test_malformed_requests_are_400_problems(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        restaurant: dict[str, Any],
        overrides: dict[str, Any],
    ) -> None:
        body = reservation_body(restaurant["restaurant_id"], **overrides)
        assert_problem(
            client.post("/dining/reservations", json=body, headers=customer(settings)), 400
        )
        assert _reservations(database_url) == 0

    def test_only_customers_reserve(
        self, client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        body = reservation_body(restaurant["restaurant_id"])
        assert_problem(client.post("/dining/reservations", json=body), 401)
        assert_problem(client.post("/dining/reservations", json=body, headers=owner(settings)), 403)
        assert _reservations(database_url) == 0


class TestOverloadedDeposit:
    def test_while_the_payment_circuit_is_open_reservations_are_refused_with_retry_after(
        self, client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "INSERT INTO ops.circuit_breaker (name, state, opened_at, next_attempt_at)"
                " VALUES ('payments', 'OPEN', now(), now() + interval '30 seconds')"
            )
        body = reservation_body(restaurant["restaurant_id"])

        response = client.post("/dining/reservations", json=body, headers=customer(settings))

        problem = assert_problem(response, 503)
        assert problem["type"] == "urn:haengbok:problem:temporarily-unavailable"
        assert 1 <= int(response.headers["retry-after"]) <= 30
        assert _reservations(database_url) == 0

    def test_the_retry_of_a_keyed_reservation_made_before_is_replayed_not_refused(
        self, client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        # A client lost the answer to its reservation, and the circuit opened before it retried:
        # the retry must say the reservation exists, not that nothing was done.
        body = reservation_body(restaurant["restaurant_id"])
        keyed = {**customer(settings), "Idempotency-Key": "lost-answer"}
        first = client.post("/dining/reservations", json=body, headers=keyed)
        assert first.status_code == 202, first.text
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "INSERT INTO ops.circuit_breaker (name, state, opened_at, next_attempt_at)"
                " VALUES ('payments', 'OPEN', now(), now() + interval '30 seconds')"
            )

        with _client_with(settings) as later:  # a shedder that has not cached the closed state
            retried = later.post("/dining/reservations", json=body, headers=keyed)
            new_key = {**customer(settings), "Idempotency-Key": "a-new-one"}
            refused = later.post("/dining/reservations", json=body, headers=new_key)
            unkeyed = later.post("/dining/reservations", json=body, headers=customer(settings))

        assert retried.status_code == 202, retried.text
        assert retried.json() == first.json()
        assert retried.headers["idempotent-replayed"] == "true"
        assert_problem(refused, 503)
        assert_problem(unkeyed, 503)
        assert _reservations(database_url) == 1


def _fill(database_url: str, queue: str, messages: int, *, age_seconds: float = 0.0) -> None:
    """``messages`` messages in ``queue``, enqueued ``age_seconds`` ago."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create(%s)", [queue])
        for _ in range(messages):
            conn.execute("SELECT pgmq.send(%s, '{}'::jsonb)", [queue])
        conn.execute(
            sql.SQL("UPDATE pgmq.{} SET enqueued_at = now() - make_interval(secs => %s)").format(
                sql.Identifier(f"q_{queue}")
            ),
            [age_seconds],
        )


def _client_with(settings: Settings, **limits: Any) -> TestClient[Litestar]:
    app = create_app(
        replace(settings, **limits), controllers=controllers(MovableClock()), problems=problems()
    )
    return TestClient(app)


class TestBackedUpQueues:
    """The settings' queue limits decide when a burst waits in the queues and when new
    reservations are refused: the same queue state, two limits."""

    @pytest.mark.parametrize("queue", [SAGA, DEPOSIT, RECOMMENDATION])
    def test_a_queue_deeper_than_the_limit_refuses_reservations_with_retry_after(
        self, settings: Settings, database_url: str, restaurant: dict[str, Any], queue: str
    ) -> None:
        _fill(database_url, queue, 3)
        body = reservation_body(restaurant["restaurant_id"])

        with _client_with(settings, shed_queue_max_depth=2) as tight:
            refused = tight.post("/dining/reservations", json=body, headers=customer(settings))
        problem = assert_problem(refused, 503)
        assert "backlog" in problem["detail"] and "Retry in 5 seconds" in problem["detail"]
        assert refused.headers["retry-after"] == "5"
        assert _reservations(database_url) == 0
        assert count_rows(database_url, "saga.instance") == 0
        assert count_rows(database_url, "outbox.event") == 1  # the restaurant's own

        with _client_with(settings, shed_queue_max_depth=3) as roomy:
            accepted = roomy.post("/dining/reservations", json=body, headers=customer(settings))
        assert accepted.status_code == 202, accepted.text
        assert _reservations(database_url) == 1

    @pytest.mark.parametrize("queue", [SAGA, DEPOSIT])
    def test_a_message_older_than_the_limit_refuses_reservations(
        self, settings: Settings, database_url: str, restaurant: dict[str, Any], queue: str
    ) -> None:
        _fill(database_url, queue, 1, age_seconds=120)
        body = reservation_body(restaurant["restaurant_id"])

        with _client_with(settings, shed_queue_max_age_seconds=60) as tight:
            assert_problem(
                tight.post("/dining/reservations", json=body, headers=customer(settings)), 503
            )
        assert _reservations(database_url) == 0

        with _client_with(settings, shed_queue_max_age_seconds=180) as roomy:
            accepted = roomy.post("/dining/reservations", json=body, headers=customer(settings))
        assert accepted.status_code == 202, accepted.text

    def test_the_restaurant_queue_never_refuses_reservations(
        self, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        _fill(database_url, RESTAURANT, 3, age_seconds=120)
        body = reservation_body(restaurant["restaurant_id"])

        with _client_with(settings, shed_queue_max_depth=2, shed_queue_max_age_seconds=60) as c:
            accepted = c.post("/dining/reservations", json=body, headers=customer(settings))
        assert accepted.status_code == 202, accepted.text


class TestCancel:
    def test_a_customer_cancels_their_own_pending_reservation(
        self, client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])

        response = client.post(f"/dining/reservations/{rid}/cancel", headers=customer(settings))

        assert response.status_code == 202, response.text
        assert response.json()["status"] == "CANCELLED"
        assert events(database_url, rid) == [
            "ReservationRequested",
            "TakeDeposit",
            "ReservationCancelled",
        ]

    def test_cancelling_twice_is_a_409_problem(
        self, client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])
        client.post(f"/dining/reservations/{rid}/cancel", headers=customer(settings))

        again = client.post(f"/dining/reservations/{rid}/cancel", headers=customer(settings))

        assert (
            assert_problem(again, 409)["type"] == "urn:haengbok:problem:dining-illegal-transition"
        )
        assert events(database_url, rid) == [
            "ReservationRequested",
            "TakeDeposit",
            "ReservationCancelled",
        ]

    def test_another_customers_reservation_is_not_found(
        self, client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])

        response = client.post(
            f"/dining/reservations/{rid}/cancel", headers=customer(settings, "mallory")
        )

        assert_problem(response, 404)
        assert status(database_url, rid) == "PENDING"
        unknown = client.post(
            f"/dining/reservations/{uuid.uuid4()}/cancel", headers=customer(settings)
        )
        problem = assert_problem(unknown, 404)
        # The query side answers an unknown reservation with the same type and title.
        assert problem["type"] == "urn:haengbok:problem:dining-reservation-not-found"
        assert problem["title"] == "Reservation not found"

    def test_owners_do_not_cancel_for_customers(
        self, client: Client, settings: Settings, restaurant: dict[str, Any]
    ) -> None:
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])
        response = client.post(f"/dining/reservations/{rid}/cancel", headers=owner(settings))
        assert_problem(response, 403)


class TestVisitAndRatingTooEarly:
    def test_a_pending_reservation_has_no_visit_yet(
        self, client: Client, settings: Settings, restaurant: dict[str, Any]
    ) -> None:
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])
        response = client.post(
            f"/dining/reservations/{rid}/visit",
            json={"outcome": "NO_SHOW"},
            headers=owner(settings),
        )
        assert_problem(response, 409)

    def test_another_restaurants_owner_sees_no_reservation(
        self, client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])
        response = client.post(
            f"/dining/reservations/{rid}/visit",
            json={"outcome": "NO_SHOW"},
            headers=owner(settings, "park"),
        )
        assert_problem(response, 404)
        assert events(database_url, rid) == ["ReservationRequested", "TakeDeposit"]

    def test_an_unknown_outcome_is_a_400_problem(
        self, client: Client, settings: Settings, restaurant: dict[str, Any]
    ) -> None:
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])
        response = client.post(
            f"/dining/reservations/{rid}/visit",
            json={"outcome": "LATE"},
            headers=owner(settings),
        )
        assert_problem(response, 400)

    def test_a_pending_reservation_cannot_be_rated(
        self, client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])
        response = client.post(
            f"/dining/reservations/{rid}/rating", json={"score": 5}, headers=customer(settings)
        )
        assert_problem(response, 409)
        assert count_rows(database_url, "reservation.rating") == 0


class TestARatingRacingANoShow:
    """The customer's rating and the owner's NO_SHOW at the same moment: whichever commits
    first, a rating that stands on a no-show is withdrawn. The visit's lock statement waits for
    the rating's transaction, but its snapshot is from before the wait (READ COMMITTED): it
    could not see the rating just committed, and the no-show's rating kept counting (found by
    two requests sent together, 5 of 10 tries)."""

    def test_a_rating_committed_while_the_visit_waits_is_withdrawn(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        restaurant: dict[str, Any],
        clock: MovableClock,
    ) -> None:
        rid = reserve(client, customer(settings), restaurant["restaurant_id"])
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE reservation.reservation SET status = 'CONFIRMED' WHERE reservation_id = %s",
                [rid],
            )
        clock.advance(dt.timedelta(days=2))  # the slot has begun: both requests are allowed
        with psycopg.connect(database_url) as rating, ThreadPoolExecutor(1) as pool:
            # The rating's transaction, as rate_reservation runs it: the row lock, then the row.
            rating.execute(
                "SELECT 1 FROM reservation.reservation WHERE reservation_id = %s FOR UPDATE",
                [rid],
            )
            rating.execute(
                "INSERT INTO reservation.rating (reservation_id, score) VALUES (%s, 2)", [rid]
            )
            visit = pool.submit(
                client.post,
                f"/dining/reservations/{rid}/visit",
                json={"outcome": "NO_SHOW"},
                headers=owner(settings),
            )
            wait_until(
                lambda: _waits_for_a_lock(database_url, rating.info.backend_pid),
                message="the visit waits for the rating's lock",
            )
            rating.commit()
            response = visit.result(timeout=30)
        assert response.status_code == 202, response.text
        assert events(database_url, rid)[-2:] == ["VisitRecorded", "RatingWithdrawn"]
        with psycopg.connect(database_url) as conn:
            withdrawn = conn.execute(
                "SELECT payload ->> 'score' FROM outbox.event"
                " WHERE type = 'reservation.RatingWithdrawn' AND stream = %s",
                [f"reservation-{rid}"],
            ).fetchone()
        assert withdrawn == ("2",)


def _waits_for_a_lock(url: str, holder_pid: int) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            [holder_pid],
        ).fetchone()
    return bool(row and row[0])
