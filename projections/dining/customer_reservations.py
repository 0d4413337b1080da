"""Customer center "my reservations": one row per reservation, merged from every context.

The row gathers what the reservation, deposit, restaurant (``booking-<id>``) and
recommendation streams say about one reservation. Rows are upserted by reservation id, so an
event that arrives before the ``ReservationRequested`` that names the customer (a rebuild from
a later point, a type filtered out) starts the row, and the request completes it later. A batch
is merged per reservation first (each facet keeps its newest version), so one statement
upserts every reservation the batch names.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

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
from projections.dining.decoding import decode, reservation_id_of, types_of
from projections.dining.sql_blocks import create_from_block, table_sql
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


class _Row:
    """What one batch says about one reservation: each facet as its newest event in the batch
    left it (the row's upsert compares the facets' stream versions with the table's), the
    request's facts if the batch holds the request, the newest rating."""

    def __init__(self, reservation_id: uuid.UUID) -> None:
        self.reservation_id = reservation_id
        self.customer: str | None = None
        self.restaurant_id: uuid.UUID | None = None
        self.deposit_amount: int | None = None
        self.request: tuple[ReservationRequested, Envelope] | None = None
        self.facets: dict[str, tuple[int, dict[str, Any]]] = {}
        self.rating: tuple[int, ReservationRated, Envelope] | None = None
        self.updated_at: dt.datetime | None = None
        self.last_global_position = 0

    def note(self, message: Message, envelope: Envelope) -> None:
        when = envelope.occurred_at
        self.updated_at = when if self.updated_at is None else max(self.updated_at, when)
        self.last_global_position = max(self.last_global_position, envelope.global_position or 0)
        for name in ("customer", "restaurant_id"):
            found = getattr(message, name, None)
            if found is not None and getattr(self, name) is None:
                setattr(self, name, found)
        if isinstance(message, ReservationRequested):
            self.request = (message, envelope)
            self._facet(envelope, "status", status="PENDING", reason=None)
            return
        if isinstance(message, ReservationRated):
            position = envelope.global_position or 0
            if self.rating is None or position >= self.rating[0]:
                self.rating = (position, message, envelope)
            return
        if self.deposit_amount is None and isinstance(
            message, (DepositPaid, DepositRefunded, DepositForfeited)
        ):
            self.deposit_amount = message.amount
        facet, values = _facet_of(message)
        self._facet(envelope, facet, **values)

    def _facet(self, envelope: Envelope, facet: str, **values: Any) -> None:
        held = self.facets.get(facet)
        if held is None or envelope.version > held[0]:
            self.facets[facet] = (envelope.version, {**values, "at": envelope.occurred_at})

    def as_json(self) -> dict[str, Any]:
        """The row's JSON object for the upsert's jsonb_to_recordset (see the SQL block)."""
        row: dict[str, Any] = {
            "reservation_id": str(self.reservation_id),
            "customer": self.customer,
            "restaurant_id": _text(self.restaurant_id),
            "deposit_amount": self.deposit_amount,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "last_global_position": self.last_global_position,
        }
        if self.request is not None:
            request, envelope = self.request
            row.update(
                customer=request.customer,
                restaurant_id=str(request.restaurant_id),
                restaurant_name=request.restaurant_name,
                reserved_date=request.date.isoformat(),
                slot=request.slot,
                party_size=request.party_size,
                deposit_amount=request.deposit_amount,
                requested_at=envelope.occurred_at.isoformat(),
            )
        for facet in _FACETS:
            version, values = self.facets.get(facet, (0, {}))
            row[f"{facet}_version"] = version
            row[facet] = values.get("status")
            row[f"{facet}_reason"] = values.get("reason")
            if facet == "deposit" and "at" in values:
                row["deposit_updated_at"] = values["at"].isoformat()
        if self.rating is not None:
            _, rated, envelope = self.rating
            row.update(rating_score=rated.score, rating_comment=rated.comment,
                       rated_at=envelope.occurred_at.isoformat())  # fmt: skip
        return row


_FACETS = ("status", "deposit", "booking", "recommendation")


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _facet_of(message: Message) -> tuple[str, dict[str, Any]]:
    """The facet (reservation status, deposit, booking, recommendation entry) one message
    sets, and the state and reason it sets it to."""
    match message:
        case ReservationDepositPaid():
            return "status", {"status": "DEPOSIT_PAID"}
        case ReservationConfirmed():
            return "status", {"status": "CONFIRMED"}
        case ReservationRejected():
            return "status", {"status": "REJECTED", "reason": message.reason}
        case ReservationCancelled():
            return "status", {"status": "CANCELLED"}
        case VisitRecorded():
            # The outcome is the status (COMPLETED or NO_SHOW); the table's CHECK refuses others.
            return "status", {"status": message.outcome}
        case DepositPaid():
            return "deposit", {"status": "PAID"}
        case DepositRefunded():
            return "deposit", {"status": "REFUNDED"}
        case DepositForfeited():
            return "deposit", {"status": "FORFEITED"}
        case DepositFailed():
            return "deposit", {"status": "FAILED", "reason": message.reason}
        case ReservationAccepted():
            return "booking", {"status": "accepted"}
        case ReservationRefused():
            return "booking", {"status": "refused", "reason": message.reason}
        case ReservationReleased():
            return "booking", {"status": "released"}
        case RecommendationEntryRegistered():
            return "recommendation", {"status": "registered"}
        case RecommendationEntryRejected():
            return "recommendation", {"status": "rejected"}
        case RecommendationEntryDeleted():
            return "recommendation", {"status": "deleted"}
    raise TypeError(f"customer reservations do not handle {type(message).__name__}")


def upsert_rows(envelopes: Sequence[Envelope]) -> list[dict[str, Any]]:
    """One JSON object per reservation that ``envelopes`` name, in any order of the
    envelopes: the upsert's parameter."""
    rows: dict[uuid.UUID, _Row] = {}
    for envelope in envelopes:
        message = decode(envelope)
        reservation_id = reservation_id_of(message)
        if reservation_id not in rows:
            rows[reservation_id] = _Row(reservation_id)
        rows[reservation_id].note(message, envelope)
    return [r.as_json() for r in rows.values()]


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
        """Merge the batch's facts per reservation and upsert every row in one statement."""
        if envelopes:
            statement = table_sql(f"{_BLOCKS}.upsert_reservations", table)
            conn.execute(statement, {"rows": Jsonb(upsert_rows(envelopes))})
