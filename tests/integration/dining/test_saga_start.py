"""The request starts the reservation saga in its own statement; a ReservationRequested that
still reaches the saga's queue (routed by workers older than that, or appended by an older API)
is handled as before: ignored for an instance the request started, a start for one it did not."""

from __future__ import annotations

from typing import Any

import psycopg

from api.dining.subscribers import reservation_saga
from haengbok.settings import Settings
from outbox.consumers import HandlerContext
from outbox.envelope import FIELDS, Envelope
from tests.integration.dining.support import (
    Client,
    customer,
    events,
    reserve,
    saga,
)


def _requested(url: str, reservation_id: str) -> Envelope:
    """The reservation's ReservationRequested as a delivery hands it to the saga."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT {', '.join(FIELDS)} FROM outbox.event"
            " WHERE stream = %s AND type = 'reservation.ReservationRequested'",
            [f"reservation-{reservation_id}"],
        ).fetchone()
    assert row is not None
    return Envelope(*row)


def _deliver_to_saga(url: str, envelope: Envelope) -> None:
    with psycopg.connect(url) as conn:
        ctx = HandlerContext(conn, envelope, None, None)  # type: ignore[arg-type]
        reservation_saga().handle(ctx, envelope)


def test_a_request_started_saga_ignores_its_start_message_delivered_anyway(
    client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
) -> None:
    rid = reserve(client, customer(settings), restaurant["restaurant_id"])
    before = saga(database_url, rid)

    _deliver_to_saga(database_url, _requested(database_url, rid))

    assert events(database_url, rid) == ["ReservationRequested", "TakeDeposit"]
    assert saga(database_url, rid) == before


def test_a_reservation_an_older_api_wrote_without_its_saga_is_started_on_delivery(
    client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
) -> None:
    # What an older API left: the row and its event, no instance and no TakeDeposit.
    rid = reserve(client, customer(settings), restaurant["restaurant_id"])
    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM saga.instance WHERE saga_id = %s", [rid])
        conn.execute(
            "DELETE FROM outbox.event WHERE stream = %s", [f"saga-dining_reservation-{rid}"]
        )

    _deliver_to_saga(database_url, _requested(database_url, rid))

    assert events(database_url, rid) == ["ReservationRequested", "TakeDeposit"]
    started = saga(database_url, rid)
    assert started is not None
    assert (started["status"], started["step"], started["deadline_name"]) == (
        "RUNNING", "taking_deposit", "deposit"
    )  # fmt: skip
