"""Customer center "my timeline": every message of a reservation's conversation, in log order.

The conversation is every logged message that names the reservation: the contexts' events on
the ``reservation-``, ``deposit-``, ``booking-`` and ``recommendation-`` streams of its id, and
the saga's commands between them on the saga's own stream (see ``summaries``). Restaurant
catalogue events are not about a reservation. Ownership is not stored here: only
``ReservationRequested`` names the customer, so queries join the reservation row to decide
whose timeline an entry belongs to.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from domain.dining.messages import RestaurantRegistered
from domain.messages import Message
from outbox.envelope import Envelope
from projections.dining.decoding import MESSAGE_CLASSES, decode
from projections.dining.sql_blocks import create_from_block, table_sql
from projections.dining.summaries import summary
from projections.projector import Table

CUSTOMER_TIMELINE = Table("customer_center", "timeline")
_BLOCKS = "dining_customer_center"
HANDLED = frozenset(MESSAGE_CLASSES) - {RestaurantRegistered.TYPE}


def _reservation_id(message: Message) -> uuid.UUID:
    # Every message on these streams names its reservation; the contract has no common base.
    found = getattr(message, "reservation_id", None)
    if not isinstance(found, uuid.UUID):
        raise TypeError(f"{type(message).__name__} names no reservation")
    return found


_COLUMNS = ("global_position", "reservation_id", "event_id", "kind", "type", "stream", "version",
            "summary", "correlation_id", "occurred_at")  # fmt: skip


def timeline_entries(envelopes: Sequence[Envelope]) -> dict[str, list[Any]]:
    """The parameters of the insert that records ``envelopes`` on their reservations'
    timelines: one list per column, in the order of the envelopes."""
    columns: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
    for envelope in envelopes:
        message = decode(envelope)
        row = (envelope.global_position, _reservation_id(message), envelope.event_id,
               envelope.kind, envelope.type, envelope.stream, envelope.version,
               summary(message), envelope.correlation_id, envelope.occurred_at)  # fmt: skip
        for name, value in zip(_COLUMNS, row, strict=True):
            columns[name].append(value)
    return columns


@dataclass(frozen=True)
class CustomerTimeline:
    """Projects ``customer_center.timeline`` (one entry per message, keyed by log position)."""

    name: str = "dining_customer_timeline"
    table: Table = CUSTOMER_TIMELINE
    message_types: frozenset[str] = field(default=HANDLED)

    def create_table(self, conn: psycopg.Connection[Any], table: sql.Identifier) -> None:
        """Create the table and its index (migration 0004 runs the same block)."""
        create_from_block(conn, f"{_BLOCKS}.create_timeline_table", table)

    def apply(
        self, conn: psycopg.Connection[Any], envelopes: Sequence[Envelope], table: sql.Identifier
    ) -> None:
        """Add one timeline entry per message, the whole batch in one statement."""
        if envelopes:
            statement = table_sql(f"{_BLOCKS}.insert_timeline_entries", table)
            conn.execute(statement, timeline_entries(envelopes))
