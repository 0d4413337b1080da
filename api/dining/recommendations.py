"""The recommendation context's use cases: register and delete a reservation's entry (saga
commands), and suspend a restaurant from the programme. Writes only ``recommendation``."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from api.dining.rows import entry_from_row
from api.dining.storage import emit, one
from domain.dining.messages import DeleteRecommendationEntry, RegisterRecommendationEntry
from domain.dining.recommendation import EntryStatus, RecommendationEntry
from outbox.consumers import HandlerContext
from outbox.envelope import Envelope
from sql import query


def register_entry(ctx: HandlerContext, command: RegisterRecommendationEntry) -> None:
    """Register the entry, or reject it while the restaurant is suspended."""
    conn = ctx.conn
    found = one(
        conn,
        "dining.entry_registration",
        reservation_id=command.reservation_id,
        restaurant_id=command.restaurant_id,
    )
    assert found is not None  # the statement always returns one row
    if found["registered"]:
        return  # registered (or registered and deleted) by an earlier command
    suspension = found["suspension"]
    entry, event = RecommendationEntry.register(
        command.reservation_id,
        command.restaurant_id,
        command.customer,
        None if suspension is None else str(suspension),
    )
    if entry is not None:
        conn.execute(
            query("dining.insert_entry"),
            {
                "reservation_id": entry.reservation_id,
                "restaurant_id": entry.restaurant_id,
                "customer": entry.customer,
            },
        )
    emit(ctx, event)


def delete_entry(ctx: HandlerContext, command: DeleteRecommendationEntry) -> None:
    """Delete the entry; deleting it twice (or one never registered) changes nothing."""
    row = one(ctx.conn, "dining.lock_entry", reservation_id=command.reservation_id)
    if row is None:
        return
    entry = entry_from_row(row)
    if entry.status is EntryStatus.DELETED:
        return
    deleted = entry.delete()
    ctx.conn.execute(query("dining.delete_entry"), {"reservation_id": entry.reservation_id})
    emit(ctx, deleted)


def handle_entry_command(ctx: HandlerContext, env: Envelope) -> None:
    """The recommendation context's subscriber: register and delete entries."""
    if env.type == RegisterRecommendationEntry.TYPE:
        register_entry(ctx, RegisterRecommendationEntry.from_payload(env.payload))
    elif env.type == DeleteRecommendationEntry.TYPE:
        delete_entry(ctx, DeleteRecommendationEntry.from_payload(env.payload))


def suspend_restaurant(
    conn: psycopg.Connection[Any], restaurant_id: uuid.UUID, reason: str
) -> None:
    """Take a restaurant out of the programme: its new entries (so reservations) are refused."""
    conn.execute(
        query("dining.suspend_restaurant"), {"restaurant_id": restaurant_id, "reason": reason}
    )


def lift_suspension(conn: psycopg.Connection[Any], restaurant_id: uuid.UUID) -> None:
    """Let a suspended restaurant's reservations be registered again."""
    conn.execute(query("dining.lift_suspension"), {"restaurant_id": restaurant_id})
