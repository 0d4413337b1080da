"""Operational state built with the platform's own functions, for the ops API and CLI tests:
queues with messages in the broker's wire format, parked messages, relayed events, sagas."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.types.json import Jsonb

from outbox import wire
from outbox.envelope import MessageContext, NewMessage
from outbox.log import append
from outbox.parking import StoredMessage, park, park_behind
from outbox.relay import relay_batch


def send(
    conn: psycopg.Connection[Any],
    queue: str,
    message_type: str,
    *,
    group: str | None = None,
    actor: str = "notes_actor",
) -> int:
    """Put one Dramatiq-shaped message (an envelope-like first argument) into ``queue``."""
    body = wire.message_body(
        queue_name=queue,
        actor_name=actor,
        args=[{"type": message_type, "stream": group or "none"}],
        message_id=str(uuid.uuid4()),
        message_timestamp=0,
    )
    row = conn.execute(
        "SELECT * FROM pgmq.send(%s::text, %s::jsonb, %s::jsonb)",
        (queue, Jsonb(body), Jsonb(wire.headers(group, "corr-" + queue))),
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def read_all(conn: psycopg.Connection[Any], queue: str) -> list[StoredMessage]:
    """Take every visible message of ``queue`` as a consumer would (they become invisible)."""
    rows = conn.execute(
        "SELECT msg_id, read_ct, enqueued_at, message, headers FROM pgmq.read(%s, 30, 100)",
        (queue,),
    ).fetchall()
    conn.commit()
    return [StoredMessage(queue, *row) for row in sorted(rows)]


def park_group(
    conn: psycopg.Connection[Any], queue: str, group: str, count: int, error: str
) -> list[int]:
    """Send ``count`` messages of one FIFO group, park the first with ``error`` and the rest
    behind it, as the broker does; returns the parked ids in group order."""
    for i in range(count):
        send(conn, queue, f"notes.Step{i}", group=group)
    taken = read_all(conn, queue)
    head, *rest = [m for m in taken if m.group_key == group]
    ids = [park(conn, head, error)]
    ids += [park_behind(conn, m) for m in rest]
    # Messages of other groups were only looked at: make them visible again.
    for other in (m for m in taken if m.group_key != group):
        conn.execute("SELECT pgmq.set_vt(%s::text, %s::bigint, 0)", (queue, other.msg_id))
    conn.commit()
    assert all(ids), "every message was in its queue and parked"
    return [int(i) for i in ids if i is not None]


def queue_rows(conn: psycopg.Connection[Any], queue: str) -> list[int]:
    """msg_ids in pgmq's own table for ``queue``: what a consumer can still get."""
    table = pgsql.Identifier("pgmq", f"q_{queue}")
    rows = conn.execute(pgsql.SQL("SELECT msg_id FROM {} ORDER BY msg_id").format(table)).fetchall()
    conn.commit()
    return [int(r[0]) for r in rows]


def append_and_relay(
    conn: psycopg.Connection[Any], types: list[str], ctx: MessageContext | None = None
) -> MessageContext:
    """Append events under one correlation id, commit, and relay them (global positions)."""
    ctx = ctx or MessageContext.new("test")
    with conn.transaction():
        append(
            conn, [NewMessage(t, f"stream-{uuid.uuid4().hex[:6]}", {"t": t}) for t in types], ctx
        )
    with conn.transaction():
        relay_batch(conn, 100)
    return ctx


def add_saga(
    conn: psycopg.Connection[Any],
    saga_type: str,
    status: str,
    *,
    correlation_id: uuid.UUID | None = None,
    parked_reason: str | None = None,
) -> uuid.UUID:
    """One saga instance row (as the saga runtime leaves it)."""
    saga_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO saga.instance (saga_id, saga_type, status, step, state, version,"
        " correlation_id, parked_reason, deadline_at)"
        " VALUES (%s, %s, %s, 'hold', %s, 3, %s, %s, now() + interval '5 minutes')",
        (
            saga_id,
            saga_type,
            status,
            Jsonb({"seats": 2}),
            correlation_id or uuid.uuid4(),
            parked_reason,
        ),
    )
    conn.commit()
    return saga_id
