"""Customer center "my timeline": every message of a reservation's conversation, in log order.

The conversation is everything on the ``reservation-``, ``deposit-``, ``booking-`` and
``recommendation-`` streams of one reservation id: the contract's events and the commands
between them (see ``summaries``). Restaurant catalogue events are not about a reservation.
Ownership is not stored here: only ``ReservationRequested`` names the customer, so queries
join the reservation row to decide whose timeline an entry belongs to.
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
from projections.dining.sql_blocks import Statement, create_from_block, execute_in_order
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


def timeline_entry(envelope: Envelope) -> Statement:
    """The insert that records ``envelope`` on its reservation's timeline."""
    message = decode(envelope)
    return f"{_BLOCKS}.insert_timeline_entry", {
        "global_position": envelope.global_position,
        "reservation_id": _reservation_id(message),
        "event_id": envelope.event_id,
        "kind": envelope.kind,
        "type": envelope.type,
        "stream": envelope.stream,
        "version": envelope.version,
        "summary": summary(message),
        "correlation_id": envelope.correlation_id,
        "occurred_at": envelope.occurred_at,
    }


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
        """Add one timeline entry per message."""
        execute_in_order(conn, table, [timeline_entry(e) for e in envelopes])
