"""Customer center "my timeline": every message of a reservation's conversation, in log order.

The conversation is every logged message that names the reservation: the contexts' events on
the ``reservation-``, ``deposit-``, ``booking-`` and ``recommendation-`` streams of its id, and
the saga's commands between them on the saga's own stream (see ``summaries``). Restaurant
catalogue events are not about a reservation. Ownership is not stored here: only
``ReservationRequested`` names the customer, so queries join the reservation row to decide
whose timeline an entry belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from domain.dining.messages import RestaurantRegistered
from outbox.envelope import Envelope
from projections.dining.decoding import MESSAGE_CLASSES, decode, reservation_id_of
from projections.dining.sql_blocks import create_from_block, table_sql
from projections.dining.summaries import summary
from projections.projector import Table

CUSTOMER_TIMELINE = Table("customer_center", "timeline")
_BLOCKS = "dining_customer_center"
HANDLED = frozenset(MESSAGE_CLASSES) - {RestaurantRegistered.TYPE}


def timeline_entries(envelopes: Sequence[Envelope]) -> list[dict[str, Any]]:
    """The insert's parameter: one JSON object per envelope, in their order (one JSON document
    costs far less to send than an array parameter per column, dumped element by element)."""
    return [
        {
            "global_position": envelope.global_position,
            "reservation_id": str(reservation_id_of(message)),
            "event_id": str(envelope.event_id),
            "kind": envelope.kind,
            "type": envelope.type,
            "stream": envelope.stream,
            "version": envelope.version,
            "summary": summary(message),
            "correlation_id": str(envelope.correlation_id),
            "occurred_at": envelope.occurred_at.isoformat(),
        }
        for envelope, message in ((e, decode(e)) for e in envelopes)
    ]


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
            conn.execute(statement, {"rows": Jsonb(timeline_entries(envelopes))})
