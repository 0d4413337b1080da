"""Recommendation read models: restaurant ratings and the activity of recommendation entries.

Two projectors, one table each (a projector owns one table so it can be rebuilt alone):
``recommendation.restaurant_rating`` keeps per restaurant the count and sum of the scores of
``ReservationRated``, less those a ``RatingWithdrawn`` took out (a rated reservation that was
then marked a no-show), with the catalogue name from ``RestaurantRegistered``; and
``recommendation.entry_activity`` keeps each reservation's entry as registered, rejected or
deleted. The ranking query joins them (``sql/queries/dining_read.sql``).
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
    RatingWithdrawn,
    RecommendationEntryDeleted,
    RecommendationEntryRegistered,
    RecommendationEntryRejected,
    ReservationRated,
    RestaurantRegistered,
)
from domain.messages import Message
from outbox.envelope import Envelope
from projections.dining.decoding import decode, types_of
from projections.dining.sql_blocks import (
    Statement,
    create_from_block,
    envelope_params,
    execute_in_order,
    table_sql,
)
from projections.projector import Table

RESTAURANT_RATINGS = Table("recommendation", "restaurant_rating")
ENTRY_ACTIVITY = Table("recommendation", "entry_activity")
_BLOCKS = "dining_recommendation_view"


def rating_statement(envelope: Envelope) -> Statement:
    """The upsert one catalogue or rating event makes on its restaurant's row."""
    message = decode(envelope)
    when = envelope_params(envelope)
    if isinstance(message, RestaurantRegistered):
        params = {"restaurant_id": message.restaurant_id, "name": message.name}
        return f"{_BLOCKS}.upsert_restaurant", {**params, "cuisine": message.cuisine, **when}
    if isinstance(message, ReservationRated):
        params = {"restaurant_id": message.restaurant_id, "score": message.score}
        return f"{_BLOCKS}.add_rating", {**params, **when}
    if isinstance(message, RatingWithdrawn):
        params = {"restaurant_id": message.restaurant_id, "score": message.score}
        return f"{_BLOCKS}.remove_rating", {**params, **when}
    raise TypeError(f"restaurant ratings do not handle {type(message).__name__}")


def _entry_fact(message: Message) -> tuple[uuid.UUID, uuid.UUID | None, str]:
    """The reservation an entry event is about, the restaurant it names, the entry's state."""
    match message:
        case RecommendationEntryRegistered():
            return message.reservation_id, message.restaurant_id, "registered"
        case RecommendationEntryRejected():
            return message.reservation_id, None, "rejected"
        case RecommendationEntryDeleted():
            # A deletion does not name the restaurant: the registration's row already does.
            return message.reservation_id, None, "deleted"
    raise TypeError(f"entry activity does not handle {type(message).__name__}")


@dataclass(slots=True)
class _Entry:
    """One reservation's entry as a batch's events leave it."""

    restaurant_id: uuid.UUID | None
    state: str
    version: int
    updated_at: dt.datetime
    global_position: int


def entry_rows(envelopes: Sequence[Envelope]) -> list[dict[str, Any]]:
    """One JSON object per reservation that ``envelopes`` name, the upsert's parameter: its
    events merged as ``upsert_entries`` merges the object with the stored row (the newest
    version's state, the first restaurant named, the latest time and log position), so the
    outcome does not depend on how the events were split into batches. One row per key also
    keeps ``INSERT ... ON CONFLICT`` from touching a row twice."""
    merged: dict[uuid.UUID, _Entry] = {}
    for envelope in envelopes:
        reservation_id, restaurant_id, state = _entry_fact(decode(envelope))
        seen = merged.get(reservation_id)
        if seen is None:
            merged[reservation_id] = _Entry(
                restaurant_id, state, envelope.version, envelope.occurred_at,
                envelope.global_position or 0,
            )  # fmt: skip
            continue
        if seen.restaurant_id is None:
            seen.restaurant_id = restaurant_id
        if envelope.version > seen.version:
            seen.state, seen.version = state, envelope.version
        seen.updated_at = max(seen.updated_at, envelope.occurred_at)
        seen.global_position = max(seen.global_position, envelope.global_position or 0)
    return [
        {
            "reservation_id": str(reservation_id),
            "restaurant_id": None if e.restaurant_id is None else str(e.restaurant_id),
            "status": e.state,
            "version": e.version,
            "updated_at": e.updated_at.isoformat(),
            "last_global_position": e.global_position,
        }
        for reservation_id, e in merged.items()
    ]


@dataclass(frozen=True)
class RestaurantRatings:
    """Projects ``recommendation.restaurant_rating`` (rating count and sum per restaurant)."""

    name: str = "dining_restaurant_ratings"
    table: Table = RESTAURANT_RATINGS
    message_types: frozenset[str] = field(
        default=types_of(RestaurantRegistered, ReservationRated, RatingWithdrawn)
    )

    def create_table(self, conn: psycopg.Connection[Any], table: sql.Identifier) -> None:
        """Create the table (migration 0004 runs the same block)."""
        create_from_block(conn, f"{_BLOCKS}.create_restaurant_rating_table", table)

    def apply(
        self, conn: psycopg.Connection[Any], envelopes: Sequence[Envelope], table: sql.Identifier
    ) -> None:
        """Name restaurants, add each rating to its restaurant's count and sum, and take a
        withdrawn one (a no-show's) out again."""
        execute_in_order(conn, table, [rating_statement(e) for e in envelopes])


@dataclass(frozen=True)
class RecommendationEntries:
    """Projects ``recommendation.entry_activity`` (each reservation's entry and its state)."""

    name: str = "dining_recommendation_entries"
    table: Table = ENTRY_ACTIVITY
    message_types: frozenset[str] = field(
        default=types_of(
            RecommendationEntryRegistered, RecommendationEntryRejected, RecommendationEntryDeleted
        )
    )

    def create_table(self, conn: psycopg.Connection[Any], table: sql.Identifier) -> None:
        """Create the table and its index (migration 0004 runs the same block)."""
        create_from_block(conn, f"{_BLOCKS}.create_entry_activity_table", table)

    def apply(
        self, conn: psycopg.Connection[Any], envelopes: Sequence[Envelope], table: sql.Identifier
    ) -> None:
        """Record each entry's newest state, the whole batch in one statement."""
        if envelopes:
            statement = table_sql(f"{_BLOCKS}.upsert_entries", table)
            conn.execute(statement, {"rows": Jsonb(entry_rows(envelopes))})
