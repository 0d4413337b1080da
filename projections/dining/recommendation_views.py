"""Recommendation read models: restaurant ratings and the activity of recommendation entries.

Two projectors, one table each (a projector owns one table so it can be rebuilt alone):
``recommendation.restaurant_rating`` keeps per restaurant the count and sum of the scores of
``ReservationRated`` (the catalogue name from ``RestaurantRegistered``), and
``recommendation.entry_activity`` keeps each reservation's entry as registered, rejected or
deleted. The ranking query joins them (``sql/queries/dining_read.sql``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from domain.dining.messages import (
    RecommendationEntryDeleted,
    RecommendationEntryRegistered,
    RecommendationEntryRejected,
    ReservationRated,
    RestaurantRegistered,
)
from outbox.envelope import Envelope
from projections.dining.decoding import decode, types_of
from projections.dining.sql_blocks import (
    Statement,
    create_from_block,
    envelope_params,
    execute_in_order,
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
    raise TypeError(f"restaurant ratings do not handle {type(message).__name__}")


def entry_statement(envelope: Envelope) -> Statement:
    """The upsert one recommendation entry event makes on its reservation's entry row."""
    message = decode(envelope)
    found: tuple[uuid.UUID, uuid.UUID | None, str]
    match message:
        case RecommendationEntryRegistered():
            found = (message.reservation_id, message.restaurant_id, "registered")
        case RecommendationEntryRejected():
            found = (message.reservation_id, None, "rejected")
        case RecommendationEntryDeleted():
            # A deletion does not name the restaurant: the registration's row already does.
            found = (message.reservation_id, None, "deleted")
        case _:
            raise TypeError(f"entry activity does not handle {type(message).__name__}")
    reservation_id, restaurant_id, state = found
    params = {"reservation_id": reservation_id, "restaurant_id": restaurant_id, "state": state}
    return f"{_BLOCKS}.upsert_entry", {**params, **envelope_params(envelope)}


@dataclass(frozen=True)
class RestaurantRatings:
    """Projects ``recommendation.restaurant_rating`` (rating count and sum per restaurant)."""

    name: str = "dining_restaurant_ratings"
    table: Table = RESTAURANT_RATINGS
    message_types: frozenset[str] = field(default=types_of(RestaurantRegistered, ReservationRated))

    def create_table(self, conn: psycopg.Connection[Any], table: sql.Identifier) -> None:
        """Create the table (migration 0004 runs the same block)."""
        create_from_block(conn, f"{_BLOCKS}.create_restaurant_rating_table", table)

    def apply(
        self, conn: psycopg.Connection[Any], envelopes: Sequence[Envelope], table: sql.Identifier
    ) -> None:
        """Name restaurants and add each rating to its restaurant's count and sum."""
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
        """Record each entry's newest state."""
        execute_in_order(conn, table, [entry_statement(e) for e in envelopes])
