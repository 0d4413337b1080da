"""The reservation context's use cases: request, cancel, visit and rating (HTTP), and the
saga's commands (deposit paid, confirm, reject). Writes only the ``reservation`` schema.

Every change locks the reservation's row first, so a customer's cancel and a saga command
never interleave; whichever commits first wins and the other sees its result.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog

from api.dining.restaurant_cache import RestaurantCache
from api.dining.rows import reservation_from_row
from api.dining.services import get_restaurant
from api.dining.storage import (
    APPEND_ATTEMPTS,
    constraint_errors,
    emit,
    new_message,
    one,
    one_async,
    record,
    record_new_streams_after,
)
from domain.dining.errors import ReservationNotFound, ReservationNotPossible
from domain.dining.messages import ConfirmReservation, RecordDepositPaid, RejectReservation
from domain.dining.reservation import (
    CONFIRMABLE,
    DEPOSIT_PAYABLE,
    REJECTABLE,
    Reservation,
    ReservationStatus,
    VisitOutcome,
)
from domain.messages import Event
from outbox.consumers import HandlerContext
from outbox.envelope import Appended, Envelope, MessageContext
from outbox.log import StaleRead
from outbox.sagas import SagaRunner
from sql import query

log = structlog.get_logger("dining.reservation")

Changed = tuple[Reservation, list[Appended]]


def _status(reservation: Reservation) -> dict[str, Any]:
    return {
        "reservation_id": reservation.reservation_id,
        "status": reservation.status.value,
        "status_reason": reservation.status_reason,
    }


async def request_reservation(
    conn: psycopg.AsyncConnection[Any],
    ctx: MessageContext,
    *,
    customer: str,
    restaurant_id: uuid.UUID,
    date: dt.date,
    slot: str,
    party_size: int,
    now: dt.datetime,
    saga: SagaRunner,
    restaurants: RestaurantCache | None = None,
) -> Changed:
    """A PENDING reservation and its ReservationRequested, which starts the reservation saga
    (``saga``: ``api.dining.subscribers.reservation_saga``): its instance is started here, in
    the same statement, and its first command (TakeDeposit) appended with the event. The
    saga's subscriber is not sent the event (``SagaRunner.starts_in_commands``).

    It is decided on the restaurant as ``restaurants`` keeps it (read now when not kept, or
    when no cache is given). The write checks that the restaurant is still so; when it has
    changed, nothing is written, and the request reads it afresh and is decided again."""
    cache = RestaurantCache(max_entries=1) if restaurants is None else restaurants
    reservation_id = uuid.uuid4()
    attempt = 1
    while True:
        restaurant = await cache.get(conn, restaurant_id, fresh=attempt > 1)
        if restaurant is None:
            raise ReservationNotPossible(f"there is no restaurant {restaurant_id}")
        reservation, requested = Reservation.request(
            reservation_id, customer, restaurant, date, slot, party_size, now
        )
        row = {
            **_status(reservation),
            "customer": customer,
            "restaurant_id": restaurant.restaurant_id,
            "restaurant_name": restaurant.name,
            "restaurant_slots": list(restaurant.slots),
            "restaurant_capacity": restaurant.capacity_per_slot,
            "date": date,
            "slot": slot,
            "party_size": party_size,
            "deposit_amount": reservation.deposit_amount,
        }
        # The reservation's stream and the saga's are named after the id made above: nothing
        # else can append to them before this commits, so the savepoint `record` retries
        # stream races in is not needed. Row, event, saga instance and its first command go in
        # one statement, the command's only write (its route says writes_once), which also
        # checks the restaurant (dining.insert_reservation).
        write = (query("dining.insert_reservation"), row)
        event = new_message(requested)
        writes, items = [write], [(event, ctx)]
        started = saga.start_now(reservation_id, event, ctx)
        writes.append(started.write)
        items.extend(started.commands)
        try:
            return reservation, await record_new_streams_after(conn, writes, items)
        except StaleRead:
            if attempt == APPEND_ATTEMPTS:
                raise
            attempt += 1


async def _customers(
    conn: psycopg.AsyncConnection[Any], reservation_id: uuid.UUID, customer: str
) -> Reservation:
    row = await one_async(conn, "dining.lock_reservation", reservation_id=reservation_id)
    if row is None or row["customer"] != customer:
        raise ReservationNotFound(f"you have no reservation {reservation_id}")
    return reservation_from_row(row)


async def _save(
    conn: psycopg.AsyncConnection[Any], ctx: MessageContext, r: Reservation, *events: Event
) -> Changed:
    await conn.execute(query("dining.save_reservation_status"), _status(r))
    return r, await record(conn, ctx, list(events))


async def cancel_reservation(
    conn: psycopg.AsyncConnection[Any],
    ctx: MessageContext,
    *,
    reservation_id: uuid.UUID,
    customer: str,
    now: dt.datetime,
) -> Changed:
    """The customer cancels their own reservation; the saga then undoes what was done."""
    reservation = await _customers(conn, reservation_id, customer)
    return await _save(conn, ctx, reservation, reservation.cancel(now))


async def record_visit(
    conn: psycopg.AsyncConnection[Any],
    ctx: MessageContext,
    *,
    reservation_id: uuid.UUID,
    owner: str,
    outcome: VisitOutcome,
    now: dt.datetime,
) -> Changed:
    """The owner of the reservation's restaurant says whether the party came."""
    row = await one_async(conn, "dining.lock_reservation", reservation_id=reservation_id)
    restaurant = None if row is None else await get_restaurant(conn, row["restaurant_id"])
    if row is None or restaurant is None or restaurant.owner != owner:
        raise ReservationNotFound(f"none of your restaurants has a reservation {reservation_id}")
    reservation = reservation_from_row(row)
    visited = reservation.record_visit(outcome, now)
    if outcome is not VisitOutcome.NO_SHOW:
        return await _save(conn, ctx, reservation, visited)
    # The party never came: a rating given once the slot had begun no longer counts. Read in
    # a statement of its own, now that the row is locked: the lock statement's snapshot is
    # from before it waited for the lock (READ COMMITTED), so its "rated" misses a rating
    # whose transaction committed meanwhile, as one racing this visit does.
    rating = await one_async(conn, "dining.get_rating", reservation_id=reservation_id)
    if rating is None:
        return await _save(conn, ctx, reservation, visited)
    reservation.rated = True
    withdrawn = reservation.withdraw_rating(int(rating["score"]))
    return await _save(conn, ctx, reservation, visited, withdrawn)


async def rate_reservation(
    conn: psycopg.AsyncConnection[Any],
    ctx: MessageContext,
    *,
    reservation_id: uuid.UUID,
    customer: str,
    score: int,
    comment: str | None,
    now: dt.datetime,
) -> Changed:
    """The customer rates the visit, once (the rating's primary key also says so)."""
    reservation = await _customers(conn, reservation_id, customer)
    rated = reservation.rate(score, comment, now)
    with constraint_errors({"rating_pkey": "this reservation is already rated"}):
        async with conn.transaction():
            await conn.execute(
                query("dining.insert_rating"),
                {"reservation_id": reservation_id, "score": score, "comment": comment},
            )
    return reservation, await record(conn, ctx, [rated])


# -- the saga's commands ---------------------------------------------------------------------


@dataclass(frozen=True)
class _SagaCommand:
    """How a saga command changes a reservation: the domain's transition, and what it is
    expected to write (the statuses it leaves from, where it goes, the reason it records),
    which lets one statement lock the row and make the change at once."""

    change: Callable[[Reservation, Mapping[str, Any]], Event]
    allowed: frozenset[ReservationStatus]
    to: ReservationStatus
    reason: Callable[[Mapping[str, Any]], str | None] = lambda _: None


_SAGA_COMMANDS: dict[str, _SagaCommand] = {
    RecordDepositPaid.TYPE: _SagaCommand(
        lambda r, _: r.record_deposit_paid(), DEPOSIT_PAYABLE, ReservationStatus.DEPOSIT_PAID
    ),
    ConfirmReservation.TYPE: _SagaCommand(
        lambda r, _: r.confirm(), CONFIRMABLE, ReservationStatus.CONFIRMED
    ),
    RejectReservation.TYPE: _SagaCommand(
        lambda r, payload: r.reject(RejectReservation.from_payload(payload).reason),
        REJECTABLE,
        ReservationStatus.REJECTED,
        lambda payload: RejectReservation.from_payload(payload).reason,
    ),
}


def handle_saga_command(ctx: HandlerContext, env: Envelope) -> None:
    """The reservation context's subscriber: RecordDepositPaid, ConfirmReservation and
    RejectReservation. A command that arrives after the customer cancelled changes nothing: the
    saga learns of the cancel from ReservationCancelled and undoes its own steps.

    One statement locks the row and writes the change the command is expected to make; the
    domain then runs the transition on the row as it was (and raises if it is not allowed,
    which rolls the write back), and its result is written again only if it differs."""
    command = _SAGA_COMMANDS.get(env.type)
    if command is None:
        return
    row = one(
        ctx.conn,
        "dining.lock_and_move_reservation",
        reservation_id=env.payload["reservation_id"],
        allowed=sorted(s.value for s in command.allowed),
        to=command.to.value,
        reason=command.reason(env.payload),
    )
    if row is None:
        raise ReservationNotFound(f"no reservation {env.payload['reservation_id']}")
    reservation = reservation_from_row(row)
    if reservation.is_closed:
        log.info("command_for_closed_reservation", command=env.type, status=reservation.status)
        return
    event = command.change(reservation, env.payload)
    expected = _status(reservation)
    written = (row["moved_status"], row["moved_reason"])
    if not row["moved"] or written != (expected["status"], expected["status_reason"]):
        ctx.conn.execute(query("dining.save_reservation_status"), expected)
    emit(ctx, event)
