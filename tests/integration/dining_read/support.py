"""Dining histories for read-side tests: contract messages appended to the real log.

Messages go through ``outbox.log.append`` exactly as the write side appends them, and get
their global positions as the relay gives them (``relay_positions``); projectors then read
them back from the log like the runner does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from api.dining.restaurants import register_restaurant as register
from domain.dining import messages as m
from domain.messages import Message
from outbox.envelope import MessageContext, NewMessage
from outbox.log import append
from projections.projector import Projector, Table
from projections.runtime import run_once
from tests.integration.projections.support import relay_positions


def record(url: str, *messages: Message, relay: bool = True) -> list[int]:
    """Append ``messages`` in one transaction (and relay them); their insert positions."""
    new = [NewMessage(x.TYPE, x.stream(), x.payload(), kind=x.KIND) for x in messages]
    with psycopg.connect(url) as conn:
        appended = append(conn, new, MessageContext.new("test"))
    if relay:
        relay_positions(url)
    return [a.position for a in appended]


def catch_up(url: str, projectors: Iterable[Projector]) -> None:
    """Run every projector until it has nothing left, as the runner would."""
    with psycopg.connect(url) as conn:
        for projector in projectors:
            while run_once(conn, projector, batch_size=50):
                pass


def rows(url: str, table: Table, order_by: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        stmt = sql.SQL("SELECT * FROM {} ORDER BY {}").format(
            table.identifier, sql.Identifier(order_by)
        )
        return conn.execute(stmt).fetchall()


def row(url: str, table: Table, reservation_id: uuid.UUID) -> dict[str, Any] | None:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        stmt = sql.SQL("SELECT * FROM {} WHERE reservation_id = %s").format(table.identifier)
        return cur.execute(stmt, [reservation_id]).fetchone()


@dataclass
class Booking:
    """One reservation's facts, to write its messages with random ids."""

    customer: str = "alice"
    restaurant_id: uuid.UUID = field(default_factory=uuid.uuid4)
    restaurant_name: str = "Haengbok Table"
    reservation_id: uuid.UUID = field(default_factory=uuid.uuid4)
    date: dt.date = dt.date(2026, 5, 1)
    slot: str = "19:00"
    party_size: int = 2
    deposit: int = 10_000

    def requested(self) -> m.ReservationRequested:
        return m.ReservationRequested(
            self.reservation_id,
            self.customer,
            self.restaurant_id,
            self.restaurant_name,
            self.date,
            self.slot,
            self.party_size,
            self.deposit,
        )

    def paid_and_confirmed(self) -> list[Message]:
        """The happy path after the request, in the order the saga produces it."""
        rid, rest = self.reservation_id, self.restaurant_id
        return [
            m.TakeDeposit(rid, self.customer, self.deposit),
            m.DepositPaid(rid, self.deposit, "psp-1"),
            m.RecordDepositPaid(rid),
            m.ReservationDepositPaid(rid),
            m.RegisterRecommendationEntry(rid, rest, self.customer),
            m.RecommendationEntryRegistered(rid, rest),
            m.AcceptReservation(rid, rest, self.date, self.slot, self.party_size),
            m.ReservationAccepted(rid, rest),
            m.ConfirmReservation(rid),
            m.ReservationConfirmed(rid),
        ]

    def cancelled(self) -> list[Message]:
        rid, rest = self.reservation_id, self.restaurant_id
        return [
            m.ReservationCancelled(rid, self.customer),
            m.RefundDeposit(rid, "cancelled by the customer"),
            m.DepositRefunded(rid, self.deposit),
            m.ReleaseReservation(rid, rest),
            m.ReservationReleased(rid, rest),
            m.DeleteRecommendationEntry(rid),
            m.RecommendationEntryDeleted(rid),
        ]

    def rated(self, score: int, comment: str | None = None) -> m.ReservationRated:
        return m.ReservationRated(
            self.reservation_id, self.restaurant_id, self.customer, score, comment
        )


def restaurant(restaurant_id: uuid.UUID, name: str, owner: str = "owner") -> m.RestaurantRegistered:
    return m.RestaurantRegistered(
        restaurant_id, owner, name, "korean", ("18:00", "19:00"), 20, 10_000
    )


def events_only(messages: Sequence[Message]) -> list[Message]:
    return [x for x in messages if x.KIND == "event"]


def register_restaurant(url: str, name: str, owner: str = "owner", cuisine: str = "korean") -> Any:
    """A restaurant registered through the restaurant context's own use case (row + event)."""

    async def run() -> Any:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            registered, _ = await register(
                conn,
                MessageContext.new(owner),
                owner=owner,
                name=name,
                cuisine=cuisine,
                slots=["18:00", "19:00"],
                capacity_per_slot=20,
                deposit_amount=10_000,
            )
            await conn.commit()
        return registered

    restaurant = asyncio.run(run())
    relay_positions(url)
    return restaurant
