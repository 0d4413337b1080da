"""An example projector for tests only: one row per shopping cart stream.

It shows the habits real projectors follow: upserts that create a row an event expected to
find, and a version guard where the order of events matters. ``event_count`` is deliberately
not guarded, so a test can see an event applied twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from outbox.envelope import Envelope
from projections.projector import Table

OPENED, ITEM_ADDED, CLOSED = "shop.CartOpened", "shop.ItemAdded", "shop.CartClosed"
UNHANDLED = "shop.PriceChanged"
_STATUS = {OPENED: "open", CLOSED: "closed"}
CART_TIMELINE = Table("public", "cart_timeline")
POISONED_TIMELINE = Table("public", "poisoned_timeline")

_UPSERT = """
INSERT INTO {table} AS t (stream, status, items, event_count, last_version, last_type,
                          last_global_position)
VALUES (%(stream)s, coalesce(%(status)s::text, 'open'), %(items)s, 1, %(version)s, %(type)s,
        %(global_position)s)
ON CONFLICT (stream) DO UPDATE
SET status = CASE WHEN excluded.last_version > t.last_version
                  THEN coalesce(%(status)s::text, t.status) ELSE t.status END,
    items = t.items + excluded.items,
    event_count = t.event_count + 1,
    last_version = greatest(t.last_version, excluded.last_version),
    last_type = excluded.last_type,
    last_global_position = excluded.last_global_position
"""


@dataclass(frozen=True)
class CartTimeline:
    name: str = "cart_timeline"
    table: Table = CART_TIMELINE
    message_types: frozenset[str] = field(default=frozenset({OPENED, ITEM_ADDED, CLOSED}))

    def create_table(self, conn: psycopg.Connection[Any], table: sql.Identifier) -> None:
        conn.execute(
            sql.SQL(
                """
                CREATE TABLE {} (
                    stream               text    PRIMARY KEY,
                    status               text    NOT NULL,
                    items                integer NOT NULL CHECK (items >= 0),
                    event_count          integer NOT NULL,
                    last_version         integer NOT NULL,
                    last_type            text    NOT NULL,
                    last_global_position bigint  NOT NULL
                )
                """
            ).format(table)
        )
        conn.execute(sql.SQL("CREATE INDEX ON {} (status)").format(table))

    def apply(
        self, conn: psycopg.Connection[Any], envelopes: Sequence[Envelope], table: sql.Identifier
    ) -> None:
        # One statement per event: an INSERT ... ON CONFLICT may not touch one row twice, and
        # a batch often holds several events of one cart. executemany pipelines them.
        params = [
            {
                "stream": e.stream,
                "status": _STATUS.get(e.type),
                "items": int(e.payload.get("qty", 1)) if e.type == ITEM_ADDED else 0,
                "version": e.version,
                "type": e.type,
                "global_position": e.global_position,
            }
            for e in envelopes
        ]
        with conn.cursor() as cur:
            cur.executemany(sql.SQL(_UPSERT).format(table=table), params)


@dataclass(frozen=True)
class PoisonedCartTimeline(CartTimeline):
    """Writes its batch, then fails if the batch holds an event marked ``poison``."""

    name: str = "poisoned_timeline"
    table: Table = POISONED_TIMELINE

    def apply(
        self, conn: psycopg.Connection[Any], envelopes: Sequence[Envelope], table: sql.Identifier
    ) -> None:
        super().apply(conn, envelopes, table)
        if any(e.payload.get("poison") for e in envelopes):
            raise RuntimeError("poisoned event")
