"""The deadline scheduler: sends a saga its deadline message once the deadline has passed.

A saga's current deadline lives in its instance row (``deadline_at``, ``deadline_name``); no
message exists for it while it lies ahead. Every worker process runs a scheduler for the saga
types it handles. A round takes due instances that have no deadline message yet (``FOR UPDATE
SKIP LOCKED``: two schedulers never take the same one, and an instance a handler holds is
left for a later round), sends each a message to its saga's queue and records that message's
id in the row, in one transaction. A scheduler killed mid-round leaves nothing sent and
nothing recorded; one that committed is never repeated, since the row now names its message.
The saga runtime (``outbox.sagas``) applies the deadline when the message arrives, unless the
saga moved on meanwhile (then it deletes the message itself, or ignores it).

Between rounds the scheduler sleeps until the next deadline falls, but at most
``poll_seconds``: a deadline set by another process meanwhile fires that much late at worst.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import dramatiq
import psycopg
import psycopg_pool
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from outbox.consumers import Subscriber, TransactionalBroker
from outbox.envelope import Envelope
from outbox.logcontext import bound
from outbox.sagas import DEADLINE_TYPE
from sql import query

log = logging.getLogger(__name__)

#: Shortest pause between rounds while due instances are held by handlers (not a busy loop).
MIN_PAUSE_SECONDS = 0.01


def deadline_envelope(
    saga_id: uuid.UUID,
    name: str | None,
    version: int,
    deadline_at: datetime,
    correlation_id: uuid.UUID,
) -> Envelope:
    """The message that tells a saga instance its deadline has passed.

    The payload's ``version`` (the instance's, unchanged by sending) is what releases before
    0006 matched the message by; this one goes by the message's id in the instance row.
    """
    return Envelope(
        position=0, global_position=None,
        event_id=uuid.uuid5(saga_id, f"deadline/{version}/{deadline_at.isoformat()}"),
        kind="event", type=DEADLINE_TYPE, stream=f"saga-{saga_id}", version=version,
        payload={"saga_id": str(saga_id), "name": name, "version": version},
        correlation_id=correlation_id, causation_id=None, actor=None,
        occurred_at=datetime.now(UTC),
    )  # fmt: skip


class DeadlineScheduler:
    """Fires the passed deadlines of the sagas behind ``subscribers`` (those with a saga type)."""

    def __init__(
        self,
        pool: ConnectionPool[Any],
        broker: TransactionalBroker,
        subscribers: Iterable[Subscriber],
        *,
        poll_seconds: float = 1.0,
        batch_size: int = 100,
    ) -> None:
        if poll_seconds <= 0 or batch_size <= 0:
            raise ValueError("poll_seconds and batch_size must be positive")
        self._pool = pool
        self._broker = broker
        self._targets = {s.saga_type: s for s in subscribers if s.saga_type is not None}
        self._saga_types = sorted(self._targets)
        self._poll = poll_seconds
        self._batch = batch_size
        #: Deadline messages this scheduler sent (tests and logs).
        self.fired_total = 0

    @property
    def saga_types(self) -> list[str]:
        return list(self._saga_types)

    def fire_due(self) -> int:
        """One round: send the due instances (up to ``batch_size``) their deadline message."""
        if not self._saga_types:
            return 0
        params = {"saga_types": self._saga_types, "limit": self._batch}
        with self._pool.connection() as conn, conn.transaction():
            with conn.cursor(row_factory=dict_row) as cur:
                due = cur.execute(query("saga.due_deadlines"), params).fetchall()
            for row in due:
                self._send(conn, row)
        self.fired_total += len(due)
        return len(due)

    def _send(self, conn: psycopg.Connection[Any], row: dict[str, Any]) -> None:
        sub = self._targets[row["saga_type"]]
        env = deadline_envelope(
            row["saga_id"], row["deadline_name"], row["version"], row["deadline_at"],
            row["correlation_id"],
        )  # fmt: skip
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=sub.route.queue_name, actor_name=sub.name, args=(env.to_json(),),
            kwargs={}, options={},
        )  # fmt: skip
        # A FIFO group of its own: the message must not wait behind the saga's other messages.
        msg_id = self._broker.send_in_transaction(conn, message, group=f"deadline-{env.event_id}")
        conn.execute(query("saga.deadline_sent"), {"msg_id": msg_id, "saga_id": row["saga_id"]})
        with bound(correlation_id=str(row["correlation_id"])):
            log.info(
                "deadline %r of %s saga %s passed (due %s); deadline message %s sent",
                row["deadline_name"], row["saga_type"], row["saga_id"],
                row["deadline_at"].isoformat(), msg_id,
            )  # fmt: skip

    def seconds_until_next(self) -> float | None:
        """Seconds until the earliest deadline without a message (negative: already due)."""
        if not self._saga_types:
            return None
        params = {"saga_types": self._saga_types}
        with self._pool.connection() as conn:
            row = conn.execute(query("saga.seconds_until_next_deadline"), params).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def run(self, stop: threading.Event) -> None:
        """Fire deadlines until ``stop`` is set; database trouble is logged and retried."""
        while not stop.is_set():
            try:
                if self.fire_due() >= self._batch:
                    continue  # more may be due right away
                pause = self._poll
                remaining = self.seconds_until_next()
                if remaining is not None:
                    pause = min(pause, max(remaining, MIN_PAUSE_SECONDS))
            except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                log.warning("saga deadline scheduler: database unavailable, retrying: %s", exc)
                pause = self._poll
            except Exception:
                log.exception("saga deadline scheduler: round failed; retrying")
                pause = self._poll
            stop.wait(pause)
