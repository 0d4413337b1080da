"""The relay: moves committed log rows to every subscribed pgmq queue.

One transaction per batch does all of it, in two statements: the first takes the relay
leadership (a transaction advisory lock, ``outbox.relay_session``); the relay statement
(``relay_statement``, built for the routes the relay keeps between batches) checks that it
leads and that the routes are still those it was built for, gives the oldest unrelayed rows
their global positions, inserts them into each subscribed queue (the Dramatiq message of each
row is put together in PostgreSQL, so no row travels to Python and back) and NOTIFYs the
consumers of the queues that got messages. Either all of that commits or none of it, so a relay killed at any instant
neither loses nor duplicates a message. Several relays may run (one per worker process); only
the leader of the moment does work, the others find the lock taken and claim nothing. A relay
whose routes changed (a worker started with other subscribers) claims nothing either, reloads
them and runs again.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from time import monotonic
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg_pool import ConnectionPool

from outbox import standby, wire
from outbox.pacing import Pacing
from outbox.standby import Standby
from sql import query

log = logging.getLogger(__name__)

OUTBOX_CHANNEL = "haengbok_outbox"
PROJECTION_WAKEUP_CHANNEL = "haengbok_projection_wakeup"


@dataclass(frozen=True, slots=True)
class Route:
    """One subscriber: the actor that receives the message, on its queue."""

    name: str
    queue_name: str
    message_types: frozenset[str]
    ordered: bool


def message_id(event_id: uuid.UUID, subscriber: str) -> str:
    """The Dramatiq message id of ``event_id``'s delivery to ``subscriber``: the same for every
    delivery, so it serves as the idempotency key of an outside call. The relay statement
    computes it in SQL the same way: md5 of "<event_id>/<subscriber>", read as a uuid."""
    return str(uuid.UUID(hashlib.md5(f"{event_id}/{subscriber}".encode()).hexdigest()))


def load_routes(conn: psycopg.Connection[Any]) -> list[Route]:
    return list(RouteTable.load(conn).routes)


def _with_digest(name: str) -> pgsql.Composed:
    return pgsql.SQL(query(name)).format(routes_digest=pgsql.SQL(query("outbox.routes_digest")))


@dataclass(frozen=True)
class RouteTable:
    """The routes, and the digest of the subscriptions they were read from (what the relay
    statement checks before it claims anything)."""

    routes: tuple[Route, ...]
    digest: str

    @classmethod
    def load(cls, conn: psycopg.Connection[Any]) -> RouteTable:
        rows = conn.execute(_with_digest("outbox.subscriptions")).fetchall()
        if not rows:
            digest = conn.execute(query("outbox.routes_digest")).fetchone()
            return cls((), str(digest[0]) if digest else "")
        routes = tuple(Route(r[0], r[1], frozenset(r[2]), r[3]) for r in rows)
        return cls(routes, str(rows[0][4]))


def claim_query(*, guarded: bool = False) -> pgsql.Composed:
    """``outbox.claim_batch``: claims up to ``limit`` rows; ``guarded``, only while the
    ``guard`` CTE of the relay statement holds (the relay statement's own use)."""
    limit = (
        "CASE WHEN (SELECT leader AND routes_ok FROM guard) THEN %(limit)s ELSE 0 END"
        if guarded
        else "%(limit)s"
    )
    return pgsql.SQL(query("outbox.claim_batch")).format(limit=pgsql.SQL(limit))


# The claimed rows as consumers receive them: Envelope.to_json's keys, and the message's
# timestamp (milliseconds) for the Dramatiq message.
_ENVELOPES = """
, envelope AS (
    SELECT c.position, c.event_id, c.type, c.stream, c.correlation_id,
           floor(extract(epoch FROM c.occurred_at) * 1000)::bigint AS stamp,
           jsonb_build_object(
               'position', c.position, 'global_position', c.global_position,
               'event_id', c.event_id, 'kind', c.kind, 'type', c.type, 'stream', c.stream,
               'version', c.version, 'payload', c.payload, 'correlation_id', c.correlation_id,
               'causation_id', c.causation_id, 'actor', c.actor,
               'occurred_at', c.occurred_at) AS body
    FROM claimed c
)"""

# One route's messages (outbox.wire: Message.asdict() keys; the FIFO group for ordered routes).
_ROUTE_ROWS = """
SELECT e.position, {rank} AS rank,
       jsonb_build_object(
           'queue_name', {queue}, 'actor_name', {actor}, 'args', jsonb_build_array(e.body),
           'kwargs', '{{}}'::jsonb, 'options', '{{}}'::jsonb,
           'message_id', md5(e.event_id::text || {suffix})::uuid,
           'message_timestamp', e.stamp) AS message,
       {headers} AS headers
FROM envelope e
WHERE e.type = ANY({types}::text[])"""

_ORDERED_HEADERS = (
    "jsonb_build_object('x-pgmq-group', e.stream, 'x-correlation-id', e.correlation_id)"
)
_UNORDERED_HEADERS = "jsonb_build_object('x-correlation-id', e.correlation_id)"


@functools.lru_cache(maxsize=16)
def relay_statement(routes: tuple[Route, ...]) -> tuple[str, tuple[str, ...]]:
    """The statement that claims a batch (``outbox.claim_batch``) and inserts it into every
    route's queue, and the queues in the order of the message counts it returns.

    One insert per queue, in log order (and in route order for one row sent to several routes
    of one queue), as the consumers' FIFO groups need. Data-modifying CTEs run exactly once,
    so the claim and every insert are one unit, and each insert sees the claimed rows through
    their RETURNING list.
    """
    by_queue: dict[str, list[Route]] = {}
    for route in sorted(routes, key=lambda r: r.name):
        by_queue.setdefault(wire.check_queue_name(route.queue_name), []).append(route)
    parts: list[pgsql.Composable] = [
        pgsql.SQL("WITH guard AS MATERIALIZED ({})").format(_with_digest("outbox.relay_guard")),
        pgsql.SQL("\n, claimed AS ({})").format(claim_query(guarded=True)),
        pgsql.SQL(_ENVELOPES),
    ]
    counts = []
    channels = []
    for i, (queue, queue_routes) in enumerate(by_queue.items()):
        rows = pgsql.SQL("\nUNION ALL").join(
            pgsql.SQL(_ROUTE_ROWS).format(
                rank=pgsql.Literal(rank),
                queue=pgsql.Literal(queue),
                actor=pgsql.Literal(route.name),
                suffix=pgsql.Literal(f"/{route.name}"),
                headers=pgsql.SQL(_ORDERED_HEADERS if route.ordered else _UNORDERED_HEADERS),
                types=pgsql.Literal(sorted(route.message_types)),
            )
            for rank, route in enumerate(queue_routes)
        )
        sent = pgsql.Identifier(f"sent_{i}")
        parts.append(
            pgsql.SQL(
                "\n, {sent} AS (\n INSERT INTO {table} (vt, message, headers)\n"
                " SELECT clock_timestamp(), m.message, m.headers FROM ({rows}) m\n"
                " ORDER BY m.position, m.rank\n RETURNING 1)"
            ).format(sent=sent, table=pgsql.Identifier("pgmq", f"q_{queue}".lower()), rows=rows)
        )
        counts.append(pgsql.SQL("(SELECT count(*) FROM {})").format(sent))
        channels.append(pgsql.Literal(wire.notify_channel(queue)))
    # The consumers of each queue that got messages, and the projections: sent at commit.
    parts.append(
        pgsql.SQL(
            "\n, notified AS (\n SELECT pg_notify(n.channel, '') FROM unnest("
            "ARRAY[{channels}]::text[], ARRAY[{counts}]::bigint[]) AS n(channel, sent)"
            " WHERE n.sent > 0\n UNION ALL SELECT pg_notify({projections}, '')"
            " WHERE EXISTS (SELECT 1 FROM claimed))"
        ).format(
            channels=pgsql.SQL(", ").join(channels),
            counts=pgsql.SQL(", ").join(counts),
            projections=pgsql.Literal(PROJECTION_WAKEUP_CHANNEL),
        )
        if channels
        else pgsql.SQL(
            "\n, notified AS (SELECT pg_notify({projections}, '')"
            " WHERE EXISTS (SELECT 1 FROM claimed))"
        ).format(projections=pgsql.Literal(PROJECTION_WAKEUP_CHANNEL))
    )
    parts.append(
        pgsql.SQL(
            "\nSELECT g.leader, g.routes_ok, (SELECT count(*) FROM claimed),"
            " ARRAY[{}]::bigint[], (SELECT count(*) FROM notified) FROM guard g"
        ).format(pgsql.SQL(", ").join(counts))
    )
    return pgsql.Composed(parts).as_string(None), tuple(by_queue)


def relay_batch(
    conn: psycopg.Connection[Any], batch_size: int, table: RouteTable | None = None
) -> int | None:
    """Relay one batch in the connection's current transaction, with the routes of ``table``
    (read here when not given, and again whenever they changed meanwhile).

    Returns the number of log rows relayed, or None when another relay holds the leadership.
    """
    conn.execute(query("outbox.relay_session"))
    table = table or RouteTable.load(conn)
    while True:
        statement, _ = relay_statement(table.routes)
        result = _outcome(conn.execute(statement, _relay_params(table, batch_size)).fetchone())
        if not isinstance(result, RoutesChanged):
            return result
        table = RouteTable.load(conn)


class RoutesChanged:
    """The relay statement's outcome when the subscriptions are no longer those it was built
    for: it claimed nothing."""


def _relay_params(table: RouteTable, batch_size: int) -> dict[str, Any]:
    return {"limit": batch_size, "routes_digest": table.digest}


def _outcome(row: tuple[Any, ...] | None) -> int | RoutesChanged | None:
    if row is None:
        raise RuntimeError("the relay statement returned no row")
    leader, routes_ok, claimed = bool(row[0]), bool(row[1]), int(row[2])
    if not leader:
        return None
    return claimed if routes_ok else RoutesChanged()


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
    """The relay loop, run on a thread inside each worker process.

    One process's relay leads (``outbox.standby``): woken by NOTIFY, it relays at once. The
    others stand by, relaying one batch per ``standby_poll_seconds`` and taking the lead when
    the leader's session ends.
    """

    def __init__(
        self,
        pool: ConnectionPool[Any],
        conninfo: str,
        *,
        batch_size: int = 500,
        idle_poll_seconds: float = 0.5,
        standby_poll_seconds: float = 1.0,
        min_interval_seconds: float = 0.0,
        busy_interval_seconds: float = 0.05,
        busy_rows: float = 8.0,
    ) -> None:
        """How far apart the leader starts batches that find work (``outbox.pacing``):
        ``min_interval_seconds`` always (0: at once when woken); ``busy_interval_seconds`` while
        its batches average ``busy_rows`` rows or more, which they only do when the machine is
        too busy for the relay to keep up at once (0: never)."""
        self._pool = pool
        self._conninfo = conninfo
        self._batch_size = batch_size
        self._idle_poll = idle_poll_seconds
        self._standby_poll = standby_poll_seconds
        self.pacing = Pacing(
            min_interval=min_interval_seconds,
            busy_interval=busy_interval_seconds,
            busy_rows=busy_rows,
        )
        self.standby = Standby(standby.RELAY)
        self.relayed_total = 0
        self._routes: RouteTable | None = None

    def relay_once(self) -> int | None:
        """One batch in one transaction of two statements (the routes are read again only
        when they changed since the last batch). Not pipelined: for so few statements,
        psycopg's pipeline mode costs more CPU in this process than the round trips it saves."""
        with self._pool.connection() as conn, conn.transaction():
            if self._routes is not None:
                conn.execute(query("outbox.relay_session"))
                statement, _ = relay_statement(self._routes.routes)
                params = _relay_params(self._routes, self._batch_size)
                result = _outcome(conn.execute(statement, params).fetchone())
                if not isinstance(result, RoutesChanged):
                    return result
                log.info("the subscriptions changed: the relay reads its routes again")
            self._routes = RouteTable.load(conn)
            return relay_batch(conn, self._batch_size, self._routes)

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set; LISTEN wakes the leader, polling covers a lost
        connection."""
        listener: psycopg.Connection[Any] | None = None
        while not stop.is_set():
            try:
                if listener is None or listener.closed:
                    listener = psycopg.connect(self._conninfo, autocommit=True)
                if not self.standby.leading and self.standby.try_lead(listener):
                    listener.execute(
                        pgsql.SQL("LISTEN {}").format(pgsql.Identifier(OUTBOX_CHANNEL))
                    )
                    log.info("this process's relay leads")
                began = monotonic()
                done = self.relay_once()
                if done:
                    self.relayed_total += done
                    pause = self.pacing.after(done)
                    if done >= self._batch_size:
                        continue  # more waiting: no pause
                    if pause > 0 and self.standby.leading:
                        stop.wait(max(0.0, pause - (monotonic() - began)))
                if self.standby.leading:
                    self._wait(listener, stop)
                else:
                    stop.wait(self._standby_poll)
            except psycopg.OperationalError as exc:
                log.warning("relay lost its database connection, retrying: %s", exc)
                if listener is not None:
                    listener.close()
                listener = None
                stop.wait(min(self._idle_poll, 1.0))
        if listener is not None:
            listener.close()

    def _wait(self, listener: psycopg.Connection[Any], stop: threading.Event) -> None:
        # In slices, so that setting ``stop`` is noticed even with a long poll.
        deadline = monotonic() + self._idle_poll
        while not stop.is_set() and (remaining := deadline - monotonic()) > 0:
            if any(True for _ in listener.notifies(timeout=min(remaining, 0.5), stop_after=1)):
                break
        # Drain what piled up so one wake-up serves many commits.
        for _ in listener.notifies(timeout=0.0):
            pass
