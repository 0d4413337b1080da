"""Helpers for Dining's write-side tests: callers, requests, and what the tables hold."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
from litestar import Litestar
from litestar.testing import TestClient

from api.auth import Role
from domain.dining.restaurant import RESTAURANT_TIMEZONE
from domain.dining.saga import ReservationSaga
from domain.messages import Command
from haengbok.settings import Settings
from outbox.envelope import Envelope
from outbox.sagas import command_stream
from tests.integration.api.support import bearer
from tests.waiting import wait_until

Client = TestClient[Litestar]
Headers = dict[str, str]


def customer(settings: Settings, name: str = "alice") -> Headers:
    return bearer(settings, Role.CUSTOMER, subject=name)


def owner(settings: Settings, name: str = "kim") -> Headers:
    return bearer(settings, Role.RESTAURANT_OWNER, subject=name)


def days_ahead(days: int = 1) -> dt.date:
    return dt.datetime.now(RESTAURANT_TIMEZONE).date() + dt.timedelta(days=days)


def restaurant_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Haengbok BBQ",
        "cuisine": "korean",
        "slots": ["12:00", "19:00"],
        "capacity_per_slot": 4,
        "deposit_amount": 10_000,
    }
    return {**body, **overrides}


def register_restaurant(client: Client, headers: Headers, **overrides: Any) -> dict[str, Any]:
    response = client.post(
        "/dining/restaurants", json=restaurant_body(**overrides), headers=headers
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def reservation_body(restaurant: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "restaurant_id": restaurant,
        "date": days_ahead().isoformat(),
        "slot": "19:00",
        "party_size": 2,
    }
    return {**body, **overrides}


def reserve(client: Client, headers: Headers, restaurant: str, **overrides: Any) -> str:
    """Request a reservation; its id."""
    body = reservation_body(restaurant, **overrides)
    response = client.post("/dining/reservations", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["reservation_id"])


def scalar(url: str, sql: str, *params: Any) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params or None).fetchone()
    return None if row is None else row[0]


def status(url: str, reservation_id: str) -> str | None:
    return scalar(
        url, "SELECT status FROM reservation.reservation WHERE reservation_id = %s", reservation_id
    )


def wait_status(url: str, reservation_id: str, expected: str, timeout: float = 15.0) -> None:
    wait_until(
        lambda: status(url, reservation_id) == expected,
        timeout=timeout,
        message=lambda: f"{reservation_id} is {status(url, reservation_id)}, not {expected}",
    )


def deposit_status(url: str, reservation_id: str) -> str | None:
    return scalar(
        url, "SELECT status FROM deposit.deposit WHERE reservation_id = %s", reservation_id
    )


def entry_status(url: str, reservation_id: str) -> str | None:
    return scalar(
        url, "SELECT status FROM recommendation.entry WHERE reservation_id = %s", reservation_id
    )


def booking_status(url: str, reservation_id: str) -> str | None:
    return scalar(
        url, "SELECT status FROM restaurant.booking WHERE reservation_id = %s", reservation_id
    )


def seats_taken(url: str, restaurant_id: str, date: dt.date, slot: str = "19:00") -> int:
    taken = scalar(
        url,
        "SELECT seats_taken FROM restaurant.slot_booking"
        " WHERE restaurant_id = %s AND date = %s AND slot = %s",
        restaurant_id,
        date,
        slot,
    )
    return int(taken or 0)


def saga(url: str, reservation_id: str) -> dict[str, Any] | None:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "SELECT * FROM saga.instance WHERE saga_id = %s", [reservation_id]
        ).fetchone()


def wait_saga(
    url: str, reservation_id: str, expected: str, timeout: float = 15.0
) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        row = saga(url, reservation_id)
        return row if row and row["status"] == expected else None

    found: dict[str, Any] = wait_until(
        settled,
        timeout=timeout,
        message=lambda: f"saga {reservation_id}: {saga(url, reservation_id)}",
    )
    return found


def events(url: str, reservation_id: str) -> list[str]:
    """Types of every message about the reservation, in log order (the saga's commands are on
    its own stream)."""
    streams = [
        f"{s}-{reservation_id}" for s in ("reservation", "deposit", "recommendation", "booking")
    ] + [command_stream(ReservationSaga.saga_type, uuid.UUID(reservation_id))]
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT type FROM outbox.event WHERE stream = ANY(%s) ORDER BY position", [streams]
        ).fetchall()
    return [r[0].split(".", 1)[1] for r in rows]


def count_rows(url: str, table: str) -> int:
    # Table names come from the tests themselves, never from input.
    return int(scalar(url, f"SELECT count(*) FROM {table}"))


def new_id() -> str:
    return str(uuid.uuid4())


def delivered(command: Command, correlation_id: uuid.UUID) -> Envelope:
    """``command`` as a delivery hands it to its handler (the handler tests call it directly)."""
    return Envelope(
        position=1, global_position=1, event_id=uuid.uuid4(), kind="command", type=command.TYPE,
        stream=command.stream(), version=1, payload=command.payload(), correlation_id=correlation_id,
        causation_id=None, actor=None, occurred_at=dt.datetime.now(dt.UTC),
    )  # fmt: skip
