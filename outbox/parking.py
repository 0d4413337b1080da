"""Dead letters, per FIFO group: a message that used up its retries is parked with its error.

pgmq has no dead-letter rule, so the broker moves such a message from its queue to
``ops.parked_message`` in one statement. Only its key is held back: a later message of the same
group (same queue) is parked behind it as it comes up, so per-group order is never broken, while
every other group keeps flowing. An operator lists, re-queues or discards parked messages
(the ops API calls the functions below inside its own transaction).
"""

from __future__ import annotations

import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from outbox import wire
from sql import query

#: The parked error keeps the exception and the innermost frames; whole tracebacks of deep
#: stacks would bloat ops.parked_message without helping the operator.
ERROR_TEXT_LIMIT = 4000
TRACEBACK_FRAMES = 8


def error_text(exc: BaseException) -> str:
    """What an operator sees on a parked message: type and message, then the innermost frames
    of the traceback (where it went wrong), cut to ``ERROR_TEXT_LIMIT`` characters."""
    head = f"{type(exc).__name__}: {exc}"[: ERROR_TEXT_LIMIT // 2]
    frames = "".join(traceback.format_tb(exc.__traceback__, limit=-TRACEBACK_FRAMES))
    tail = "Traceback (innermost frames last):\n" + frames
    room = ERROR_TEXT_LIMIT - len(head) - 1
    return head + "\n" + (tail if len(tail) <= room else "..." + tail[-(room - 3) :])


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as pgmq returned it from a read."""

    queue_name: str
    msg_id: int
    read_ct: int
    enqueued_at: datetime | None
    body: Any
    headers: dict[str, Any] | None

    @property
    def group_key(self) -> str | None:
        group = (self.headers or {}).get(wire.GROUP_HEADER)
        return None if group is None else str(group)


@dataclass(frozen=True, slots=True)
class ParkedMessage:
    """One row of ``ops.parked_message``."""

    id: int
    queue_name: str
    group_key: str | None
    msg_id: int
    message: Any
    headers: dict[str, Any] | None
    read_ct: int
    error: str
    enqueued_at: datetime | None
    parked_at: datetime


def _params(stored: StoredMessage, error: str) -> dict[str, Any]:
    return {
        "queue": stored.queue_name,
        "group_key": stored.group_key,
        "msg_id": stored.msg_id,
        "message": Jsonb(stored.body),
        "headers": None if stored.headers is None else Jsonb(stored.headers),
        "read_ct": stored.read_ct,
        "error": error,
        "enqueued_at": stored.enqueued_at,
    }


def _lock_group(conn: psycopg.Connection[Any], queue: str, group_key: str | None) -> None:
    if group_key is not None:
        conn.execute(query("broker.lock_group"), {"queue": queue, "group_key": group_key})


def park(conn: psycopg.Connection[Any], stored: StoredMessage, error: str) -> int | None:
    """Move a message from its queue to ``ops.parked_message``; the parked id, or None when the
    message was no longer in its queue (another delivery finished it).

    A saga's command (its FIFO group is the saga's command stream) parks its saga too, in the
    same transaction, when nothing else would move the saga: see ``saga.park_waiting``.
    Guarantee 5 says a saga settles or is parked visibly; one waiting on a dead letter did
    neither (COMPENSATING for good, with no reason shown)."""
    with conn.transaction():
        _lock_group(conn, stored.queue_name, stored.group_key)
        row = conn.execute(query("broker.park"), _params(stored, error)).fetchone()
        if row is not None and (saga := saga_of_group(stored.group_key)) is not None:
            reason = f"{stored.queue_name} parked its command as #{row[0]}: {_first_line(error)}"
            conn.execute(query("saga.park_waiting"), {**saga, "reason": reason})
    return None if row is None else int(row[0])


def saga_of_group(group_key: str | None) -> dict[str, Any] | None:
    """The saga (``saga_type``, ``saga_id``) whose command stream a FIFO group is
    (``outbox.sagas.command_stream``: "saga-<type>-<uuid>"), else None."""
    if group_key is None or not group_key.startswith("saga-") or len(group_key) < 43:
        return None
    saga_type, tail = group_key[len("saga-") : -37], group_key[-36:]
    if not saga_type or group_key[-37] != "-":
        return None
    try:
        return {"saga_type": saga_type, "saga_id": uuid.UUID(tail)}
    except ValueError:
        return None


def _first_line(error: str) -> str:
    return error.split("\n", 1)[0][:300]


def park_behind(conn: psycopg.Connection[Any], stored: StoredMessage) -> int | None:
    """Park a message behind the parked message of its group; None if the group has none any
    more (it was re-queued meanwhile) or the message was gone."""
    if stored.group_key is None:
        return None
    with conn.transaction():
        _lock_group(conn, stored.queue_name, stored.group_key)
        row = conn.execute(query("broker.park_behind"), _params(stored, "")).fetchone()
    return None if row is None else int(row[0])


def list_parked(conn: psycopg.Connection[Any], queue: str | None = None) -> list[ParkedMessage]:
    """Parked messages (of one queue, or all), grouped by queue and FIFO group, in queue order."""
    rows = conn.execute(query("broker.list_parked"), {"queue": queue}).fetchall()
    return [ParkedMessage(*row) for row in rows]


def requeue_parked(conn: psycopg.Connection[Any], parked_id: int) -> list[int]:
    """Send a parked message back to its queue with ``read_ct`` reset, together with the
    messages parked behind it in its group, in their original order; delete their parked rows.

    Runs in the caller's transaction. Returns the msg_ids put back (their original ones, so they
    go ahead of later messages of the group still in the queue); empty if ``parked_id`` is
    unknown. Re-queueing a message that waits behind an earlier parked one of its group only
    parks it again when it comes up: the group's order wins.
    """
    target = conn.execute(query("broker.parked_target"), {"id": parked_id}).fetchone()
    if target is None:
        return []
    queue, group_key = str(target[0]), target[1]
    _lock_group(conn, queue, group_key)
    rows = conn.execute(query("broker.requeue_parked"), {"id": parked_id}).fetchall()
    if rows:
        conn.execute(query("broker.notify"), {"channel": wire.notify_channel(queue)})
        if (saga := saga_of_group(group_key)) is not None:
            conn.execute(query("saga.resume_parked"), saga)
    return [int(r[0]) for r in rows]


def discard_parked(conn: psycopg.Connection[Any], parked_id: int) -> bool:
    """Delete a parked message for good (runs in the caller's transaction). Messages parked
    behind it stay parked until re-queued or discarded themselves."""
    row = conn.execute(query("broker.discard_parked"), {"id": parked_id}).fetchone()
    return row is not None
