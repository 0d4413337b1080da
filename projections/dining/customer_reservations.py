"""Customer center "my reservations": one row per reservation, merged from every context.

The row gathers what the reservation, deposit, restaurant (``booking-<id>``) and
recommendation streams say about one reservation. Rows are upserted by reservation id, so an
event that arrives before the ``ReservationRequested`` that names the customer (a rebuild from
a later point, a type filtered out) starts the row, and the request completes it later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from domain.dining.messages import (
    DepositFailed,
    DepositForfeited,
    DepositPaid,
    DepositRefunded,
    RecommendationEntryDeleted,
    RecommendationEntryRegistered,
    RecommendationEntryRejected,
    ReservationAccepted,
    ReservationCancelled,
    ReservationConfirmed,
    ReservationDepositPaid,
    ReservationRated,
    ReservationRefused,
    ReservationRejected,
    ReservationReleased,
    ReservationRequested,
    VisitRecorded,
)
from domain.messages import Message
from outbox.envelope import Envelope
from projections.dining.decoding import decode, types_of
from projections.dining.sql_blocks import (
    Statement,
    create_from_block,
    envelope_params,
    execute_in_order,
)
from projections.projector import Table

CUSTOMER_RESERVATIONS = Table("customer_center", "reservation")
_BLOCKS = "dining_customer_center"
HANDLED = types_of(
    ReservationRequested,
    ReservationDepositPaid,
    ReservationConfirmed,
    ReservationRejected,
    ReservationCancelled,
    VisitRecorded,
    ReservationRated,
    DepositPaid,
    DepositFailed,
    DepositRefunded,
    DepositForfeited,
    ReservationAccepted,
    ReservationRefused,
    ReservationReleased,
    RecommendationEntryRegistered,
    RecommendationEntryRejected,
    RecommendationEntryDeleted,
)


def _statement(message: Message) -> tuple[str, dict[str, Any]]:
    """The upsert (block name and its own parameters) one message makes."""
    match message:
        case ReservationRequested():
            return "upsert_requested", {
                "reservation_id": message.reservation_id,
                "customer": message.customer,
                "restaurant_id": message.restaurant_id,
                "restaurant_name": message.restaurant_name,
                "reserved_date": message.date,
                "slot": message.slot,
                "party_size": message.party_size,
                "deposit_amount": message.deposit_amount,
            }
        case ReservationDepositPaid():
            return _status(message.reservation_id, "DEPOSIT_PAID")
        case ReservationConfirmed():
            return _status(message.reservation_id, "CONFIRMED")
        case ReservationRejected():
            return _status(message.reservation_id, "REJECTED", reason=message.reason)
        case ReservationCancelled():
            return _status(message.reservation_id, "CANCELLED", customer=message.customer)
        case VisitRecorded():
            # The outcome is the status (COMPLETED or NO_SHOW); the table's CHECK refuses others.
            return _status(message.reservation_id, message.outcome, message.restaurant_id)
        case ReservationRated():
            return "upsert_rating", {
                "reservation_id": message.reservation_id,
                "customer": message.customer,
                "restaurant_id": message.restaurant_id,
                "score": message.score,
                "comment": message.comment,
            }
        case DepositPaid():
            return _deposit(message.reservation_id, "PAID", amount=message.amount)
        case DepositRefunded():
            return _deposit(message.reservation_id, "REFUNDED", amount=message.amount)
        case DepositForfeited():
            return _deposit(message.reservation_id, "FORFEITED", amount=message.amount)
        case DepositFailed():
            return _deposit(message.reservation_id, "FAILED", reason=message.reason)
        case ReservationAccepted():
            return _booking(message.reservation_id, message.restaurant_id, "accepted")
        case ReservationRefused():
            return _booking(
                message.reservation_id, message.restaurant_id, "refused", message.reason
            )
        case ReservationReleased():
            return _booking(message.reservation_id, message.restaurant_id, "released")
        case RecommendationEntryRegistered():
            return _recommendation(message.reservation_id, "registered", message.restaurant_id)
        case RecommendationEntryRejected():
            return _recommendation(message.reservation_id, "rejected")
        case RecommendationEntryDeleted():
            return _recommendation(message.reservation_id, "deleted")
    raise TypeError(f"customer reservations do not handle {type(message).__name__}")


def _status(
    reservation_id: Any,
    status: str,
    restaurant_id: Any = None,
    *,
    customer: str | None = None,
    reason: str | None = None,
) -> tuple[str, dict[str, Any]]:
    return "upsert_status", {
        "reservation_id": reservation_id,
        "customer": customer,
        "restaurant_id": restaurant_id,
        "status": status,
        "reason": reason,
    }


def _deposit(
    reservation_id: Any, state: str, *, amount: int | None = None, reason: str | None = None
) -> tuple[str, dict[str, Any]]:
    params = {"reservation_id": reservation_id, "state": state, "amount": amount}
    return "upsert_deposit", {**params, "reason": reason}


def _booking(
    reservation_id: Any, restaurant_id: Any, state: str, reason: str | None = None
) -> tuple[str, dict[str, Any]]:
    params = {"reservation_id": reservation_id, "restaurant_id": restaurant_id, "state": state}
    return "upsert_booking", {**params, "reason": reason}


def _recommendation(
    reservation_id: Any, state: str, restaurant_id: Any = None
) -> tuple[str, dict[str, Any]]:
    params = {"reservation_id": reservation_id, "restaurant_id": restaurant_id, "state": state}
    return "upsert_recommendation", params


def statement_for(envelope: Envelope) -> Statement:
    """The fully named upsert and parameters that project ``envelope``."""
    block, params = _statement(decode(envelope))
    return f"{_BLOCKS}.{block}", {**params, **envelope_params(envelope)}


@dataclass(frozen=True)
class CustomerReservations:
    """Projects ``customer_center.reservation`` (one merged row per reservation)."""

    name: str = "dining_customer_reservations"
    table: Table = CUSTOMER_RESERVATIONS
    message_types: frozenset[str] = field(default=HANDLED)

    def create_table(self, conn: psycopg.Connection[Any], table: sql.Identifier) -> None:
        """Create the table and its index (migration 0004 runs the same block)."""
        create_from_block(conn, f"{_BLOCKS}.create_reservation_table", table)

    def apply(
        self, conn: psycopg.Connection[Any], envelopes: Sequence[Envelope], table: sql.Identifier
    ) -> None:
        """Upsert each event's facts into its reservation's row, in log order."""
        execute_in_order(conn, table, [statement_for(e) for e in envelopes])
