"""The restaurant context's AcceptReservation handler against the database: one statement
seats a party or says why not, and a repeated command takes nothing twice."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.rows import dict_row

from api.dining.restaurants import accept_reservation
from domain.dining.messages import AcceptReservation, ReservationAccepted, ReservationRefused
from haengbok.settings import Settings
from outbox.consumers import HandlerContext
from tests.integration.dining.support import (
    Client,
    days_ahead,
    delivered,
    owner,
    register_restaurant,
)

CAPACITY = 4


def _accept(url: str, command: AcceptReservation) -> list[dict[str, Any]]:
    """Run the handler in its own committed transaction, as a delivery would; the payloads
    of what it emitted."""
    envelope = delivered(command, command.reservation_id)
    with psycopg.connect(url) as conn:
        ctx = HandlerContext(conn, envelope, None, None)  # type: ignore[arg-type]
        accept_reservation(ctx, command)
        with conn.cursor(row_factory=dict_row) as cur:
            emitted = cur.execute(
                "SELECT type, payload FROM outbox.event WHERE stream = %s ORDER BY position",
                [command.stream()],
            ).fetchall()
    return emitted


def _seats(url: str, restaurant_id: uuid.UUID) -> int | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT seats_taken FROM restaurant.slot_booking WHERE restaurant_id = %s",
            [restaurant_id],
        ).fetchone()
    return None if row is None else int(row[0])


def _bookings(url: str, restaurant_id: uuid.UUID) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM restaurant.booking WHERE restaurant_id = %s", [restaurant_id]
        ).fetchone()
    assert row is not None
    return int(row[0])


def _command(restaurant_id: uuid.UUID, party: int, slot: str = "19:00") -> AcceptReservation:
    return AcceptReservation(uuid.uuid4(), restaurant_id, days_ahead(), slot, party)


class TestAcceptReservation:
    def test_seats_until_the_slot_is_full_then_refuses_without_touching_the_count(
        self, client: Client, settings: Settings, database_url: str
    ) -> None:
        place = register_restaurant(client, owner(settings), capacity_per_slot=CAPACITY)
        rid = uuid.UUID(place["restaurant_id"])

        first = _accept(database_url, _command(rid, 3))
        second = _accept(database_url, _command(rid, 1))
        refused = _accept(database_url, _command(rid, 1))

        assert [e["type"] for e in first + second] == [ReservationAccepted.TYPE] * 2
        assert [e["type"] for e in refused] == [ReservationRefused.TYPE]
        assert refused[0]["payload"]["reason"].startswith("no seats left for 1 at 19:00")
        assert _seats(database_url, rid) == CAPACITY
        assert _bookings(database_url, rid) == 2

    def test_a_party_larger_than_a_fresh_slot_is_refused_and_creates_no_slot_row(
        self, client: Client, settings: Settings, database_url: str
    ) -> None:
        place = register_restaurant(client, owner(settings), capacity_per_slot=CAPACITY)
        rid = uuid.UUID(place["restaurant_id"])

        refused = _accept(database_url, _command(rid, CAPACITY + 1))

        assert [e["type"] for e in refused] == [ReservationRefused.TYPE]
        assert "no seats left" in refused[0]["payload"]["reason"]
        assert (_seats(database_url, rid), _bookings(database_url, rid)) == (None, 0)

    def test_a_slot_the_restaurant_does_not_offer_is_refused(
        self, client: Client, settings: Settings, database_url: str
    ) -> None:
        place = register_restaurant(client, owner(settings), capacity_per_slot=CAPACITY)
        rid = uuid.UUID(place["restaurant_id"])

        refused = _accept(database_url, _command(rid, 1, slot="04:00"))

        assert [e["type"] for e in refused] == [ReservationRefused.TYPE]
        assert refused[0]["payload"]["reason"] == "the restaurant does not offer the 04:00 slot"
        assert (_seats(database_url, rid), _bookings(database_url, rid)) == (None, 0)

    def test_the_same_command_delivered_again_takes_no_seats_and_emits_nothing(
        self, client: Client, settings: Settings, database_url: str
    ) -> None:
        place = register_restaurant(client, owner(settings), capacity_per_slot=CAPACITY)
        rid = uuid.UUID(place["restaurant_id"])
        command = _command(rid, 2)

        _accept(database_url, command)
        again = _accept(database_url, command)

        assert [e["type"] for e in again] == [ReservationAccepted.TYPE]  # the first one only
        assert (_seats(database_url, rid), _bookings(database_url, rid)) == (2, 1)
