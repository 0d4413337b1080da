"""The relay: moves committed log rows to every subscribed pgmq queue.

One transaction per batch does all of it: take the relay leadership (advisory lock), give the
oldest unrelayed rows their global positions, insert them into each subscribed queue (one
statement per queue) and NOTIFY the consumers. Either all of that commits or none of it, so a
relay killed at any instant neither loses nor duplicates a message. Several relays may run (one
per worker process); only the leader of the moment does work, the others find the lock taken
and wait.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from outbox import wire
from outbox.envelope import Envelope
from sql import query, queue_query

log = logging.getLogger(__name__)

OUTBOX_CHANNEL = "haengbok_outbox"
PROJECTION_WAKEUP_CHANNEL = "haengbok_projection_wakeup"
# Message ids derived from (event, subscriber) make every delivery of one event to one
# subscriber recognisable, e.g. as the idempotency key of an outside call.
_MESSAGE_NAMESPACE = uuid.UUID("6f1d2a64-8f4e-4d0e-9a51-3c0f1e2b7a10")


@dataclass(frozen=True, slots=True)
class Route:
    """One subscriber: the actor that receives the message, on its queue."""

    name: str
    queue_name: str
    message_types: frozenset[str]
    ordered: bool


def message_id(event_id: uuid.UUID, subscriber: str) -> str:
    return str(uuid.uuid5(_MESSAGE_NAMESPACE, f"{event_id}/{subscriber}"))


def load_routes(conn: psycopg.Connection[Any]) -> list[Route]:
    rows = conn.execute(query("outbox.subscriptions")).fetchall()
    return [Route(r[0], r[1], frozenset(r[2]), r[3]) for r in rows]


def build_sends(
    envelopes: Sequence[Envelope], routes: Iterable[Route]
) -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Group the Dramatiq messages and headers per queue, keeping log order inside each."""
    by_type: dict[str, list[Route]] = defaultdict(list)
    for route in routes:
        for message_type in route.message_types:
            by_type[message_type].append(route)
    sends: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for env in envelopes:
        targets = by_type.get(env.type)
        if not targets:
            continue
        body_args = [env.to_json()]
        stamp = int(env.occurred_at.timestamp() * 1000)
        for route in targets:
            body = wire.message_body(
                queue_name=route.queue_name,
                actor_name=route.name,
                args=body_args,
                message_id=message_id(env.event_id, route.name),
                message_timestamp=stamp,
            )
            head = wire.headers(env.stream if route.ordered else None, str(env.correlation_id))
            msgs, heads = sends.setdefault(route.queue_name, ([], []))
            msgs.append(body)
            heads.append(head)
    return sends


def relay_batch(conn: psycopg.Connection[Any], batch_size: int) -> int | None:
    """Relay one batch in the connection's current transaction.

    Returns the number of log rows relayed, or None when another relay holds the leadership.
    """
    leader = conn.execute(query("outbox.try_relay_leadership")).fetchone()
    if not leader or not leader[0]:
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query("outbox.claim_batch"), {"limit": batch_size}).fetchall()
    if not rows:
        return 0
    envelopes = sorted((Envelope.from_row(r) for r in rows), key=lambda e: e.position)
    sends = build_sends(envelopes, load_routes(conn))
    for queue_name, (msgs, heads) in sends.items():
        conn.execute(
            queue_query("send_json_array", queue_name),
            {"messages": Jsonb(msgs), "headers": Jsonb(heads), "delay_ms": 0},
        )
    channels = [wire.notify_channel(q) for q in sends] + [PROJECTION_WAKEUP_CHANNEL]
    conn.execute(query("outbox.notify"), {"channels": channels})
    return len(rows)


def sync_routes(conn: psycopg.Connection[Any], routes: Iterable[Route]) -> None:
    """Record subscribers and create their queues (idempotent; run at worker start)."""
    for route in routes:
        wire.check_queue_name(route.queue_name)
        conn.execute(query("outbox.ensure_queue"), {"queue": route.queue_name})
        if route.ordered:
            conn.execute(query("broker.create_group_index"), {"queue": route.queue_name})
        conn.execute(
            query("outbox.upsert_subscription"),
            {
                "name": route.name,
                "queue_name": route.queue_name,
                "message_types": sorted(route.message_types),
                "ordered": route.ordered,
            },
        )


class Relay:
    """The relay loop, run on a thread inside each worker process."""

    def __init__(
        self,
        pool: ConnectionPool[Any],
        conninfo: str,
        *,
        batch_size: int = 500,
        idle_poll_seconds: float = 0.5,
    ) -> None:
        self._pool = pool
        self._conninfo = conninfo
        self._batch_size = batch_size
        self._idle_poll = idle_poll_seconds
        self.relayed_total = 0

    def relay_once(self) -> int | None:
        with self._pool.connection() as conn, conn.transaction():
            return relay_batch(conn, self._batch_size)

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set; LISTEN wakes it, polling covers a lost connection."""
        listener: psycopg.Connection[Any] | None = None
        while not stop.is_set():
            try:
                if listener is None or listener.closed:
                    listener = psycopg.connect(self._conninfo, autocommit=True)
                    listener.execute(f"LISTEN {OUTBOX_CHANNEL}")
                done = self.relay_once()
                if done:
                    self.relayed_total += done
                    if done >= self._batch_size:
                        continue  # more waiting: no pause
                self._wait(listener, stop, leader=done is not None)
            except psycopg.OperationalError as exc:
                log.warning("relay lost its database connection, retrying: %s", exc)
                if listener is not None:
                    listener.close()
                listener = None
                stop.wait(min(self._idle_poll, 1.0))
        if listener is not None:
            listener.close()

    def _wait(
        self, listener: psycopg.Connection[Any], stop: threading.Event, *, leader: bool
    ) -> None:
        # A follower polls slowly: it only needs to notice when the leader goes away.
        timeout = self._idle_poll if leader else max(self._idle_poll, 1.0)
        for _ in listener.notifies(timeout=timeout, stop_after=1):
            break
        # Drain what piled up so one wake-up serves many commits.
        for _ in listener.notifies(timeout=0.0):
            pass
