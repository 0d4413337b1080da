"""The restaurant context's use cases: registering a restaurant (HTTP) and seating or releasing
a reservation (saga commands). Writes only the ``restaurant`` schema."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
import structlog

from api.dining.rows import booking_from_row
from api.dining.storage import emit, one, record
from domain.dining.messages import AcceptReservation, ReleaseReservation
from domain.dining.restaurant import Booking, BookingStatus, Restaurant, refuse
from outbox.consumers import HandlerContext
from outbox.envelope import Appended, Envelope, MessageContext
from sql import query

log = structlog.get_logger("dining.restaurant")


async def register_restaurant(
    conn: psycopg.AsyncConnection[Any],
    ctx: MessageContext,
    *,
    owner: str,
    name: str,
    cuisine: str,
    slots: Sequence[str],
    capacity_per_slot: int,
    deposit_amount: int,
) -> tuple[Restaurant, list[Appended]]:
    """Store a new restaurant and its RestaurantRegistered event (one transaction)."""
    restaurant, registered = Restaurant.register(
        uuid.uuid4(), owner, name, cuisine, slots, capacity_per_slot, deposit_amount
    )
    await conn.execute(
        query("dining.insert_restaurant"),
        {
            "restaurant_id": restaurant.restaurant_id,
            "owner": restaurant.owner,
            "name": restaurant.name,
            "cuisine": restaurant.cuisine,
            "slots": list(restaurant.slots),
            "capacity_per_slot": restaurant.capacity_per_slot,
            "deposit_amount": restaurant.deposit_amount,
        },
    )
    return restaurant, await record(conn, ctx, [registered])


def accept_reservation(ctx: HandlerContext, command: AcceptReservation) -> None:
    """Seat the party if the slot still has room, else refuse; an accepted one stays so."""
    booking = Booking(
        command.reservation_id,
        command.restaurant_id,
        command.date,
        command.slot,
        command.party_size,
    )
    outcome = one(
        ctx.conn,
        "dining.accept_booking",
        reservation_id=booking.reservation_id,
        restaurant_id=booking.restaurant_id,
        date=booking.date,
        slot=booking.slot,
        party_size=booking.party_size,
    )
    assert outcome is not None  # the statement always returns its one outcome row
    if outcome["already"]:
        return  # already seated by an earlier command for this reservation
    if not outcome["offered"]:
        reason = f"the restaurant does not offer the {booking.slot} slot"
        emit(ctx, refuse(booking.reservation_id, booking.restaurant_id, reason))
        return
    if outcome["seats_taken"] is None:
        full = f"no seats left for {booking.party_size} at {booking.slot} on {booking.date}"
        emit(ctx, refuse(booking.reservation_id, booking.restaurant_id, full))
        return
    log.debug("seats_taken", seats_taken=outcome["seats_taken"], capacity=outcome["capacity"])
    emit(ctx, booking.accepted())


def release_reservation(ctx: HandlerContext, command: ReleaseReservation) -> None:
    """Give the seats back; a booking that is already released (or never was) stays as is."""
    row = one(ctx.conn, "dining.lock_booking", reservation_id=command.reservation_id)
    if row is None:
        log.warning("release_of_unknown_booking", reservation_id=str(command.reservation_id))
        return
    booking = booking_from_row(row)
    if booking.status is BookingStatus.RELEASED:
        return
    released = booking.release()
    ctx.conn.execute(query("dining.release_booking"), {"reservation_id": booking.reservation_id})
    emit(ctx, released)


def booking_lock_key(env: Envelope) -> str:
    """The order a batch of booking commands runs in: by the slot an accept locks, so
    concurrent batches lock slots in one order (a release's slot is only known from its
    booking row; releases go last, by reservation)."""
    payload = env.payload
    if env.type == AcceptReservation.TYPE:
        return f"0/{payload.get('restaurant_id')}/{payload.get('date')}/{payload.get('slot')}"
    return f"1/{payload.get('reservation_id')}"


def handle_booking_command(ctx: HandlerContext, env: Envelope) -> None:
    """The restaurant context's subscriber: AcceptReservation and ReleaseReservation."""
    if env.type == AcceptReservation.TYPE:
        accept_reservation(ctx, AcceptReservation.from_payload(env.payload))
    elif env.type == ReleaseReservation.TYPE:
        release_reservation(ctx, ReleaseReservation.from_payload(env.payload))
