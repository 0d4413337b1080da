"""Catching a projection up with the event log, one transaction per batch.

The read-model rows and the checkpoint commit together, so a crash at any point leaves the
projection exactly at its last committed batch: nothing lost, nothing applied twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool

from outbox.envelope import FIELDS, Envelope
from projections.projector import Projector, check_projector
from sql import query

WAKEUP_CHANNEL = "haengbok_projection_wakeup"
DEFAULT_BATCH_SIZE = 500
# How far past the checkpoint one transaction may scan for handled types: keeps transactions
# short when a projection skips long stretches of events it does not handle.
SCAN_WINDOW_BATCHES = 20


class BatchResult(NamedTuple):
    """Where a batch left off, and the log head it was read against."""

    position: int
    head: int


class ProjectionLag(NamedTuple):
    name: str
    checkpoint: int
    head: int
    lag_events: int
    lag_seconds: float


def project_batch(
    conn: psycopg.Connection[Any],
    projector: Projector,
    table: sql.Identifier,
    after: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> BatchResult:
    """Apply the next handled events after global position ``after`` to ``table``.

    Runs in the caller's transaction and leaves the checkpoint to the caller. The returned
    position passes over unhandled events too, so the checkpoint moves even when nothing applies.
    """
    head = int(_scalar(conn, "projection.head", None))
    upto = min(head, after + batch_size * SCAN_WINDOW_BATCHES)
    if upto <= after:
        return BatchResult(after, head)
    params = {
        "after": after,
        "upto": upto,
        "types": sorted(projector.message_types),
        "limit": batch_size,
    }
    envelopes = read_batch(conn, params)
    if envelopes:
        projector.apply(conn, envelopes, table)
    # A full batch may have stopped short of upto; otherwise everything up to upto is done.
    position = _last_position(envelopes) if len(envelopes) == batch_size else upto
    return BatchResult(position, head)


def read_batch(conn: psycopg.Connection[Any], params: dict[str, Any]) -> list[Envelope]:
    """The log rows of ``projection.batch`` as envelopes. Its columns are the envelope's
    fields in their order, so each row becomes one without a dict in between (a round reads
    hundreds); the check that they still are costs one comparison per batch."""
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(query("projection.batch"), params).fetchall()
        if cur.description is not None and tuple(c.name for c in cur.description) != FIELDS:
            raise RuntimeError("projection.batch must select the Envelope fields, in order")
    return [Envelope(*row) for row in rows]


def _last_position(envelopes: Sequence[Envelope]) -> int:
    return int(envelopes[-1].global_position or 0)


def run_once(
    pool_or_conn: ConnectionPool[Any] | psycopg.Connection[Any],
    projector: Projector,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> int:
    """Project one batch into the live table and commit it with the checkpoint.

    Returns how many log positions the checkpoint advanced (0 when caught up, or when another
    process holds this projection). A failing ``apply`` rolls back rows and checkpoint alike
    and propagates. A connection passed in must not be inside a transaction: this commits.
    """
    check_projector(projector)
    if isinstance(pool_or_conn, ConnectionPool):
        with pool_or_conn.connection() as conn:
            return _run_once(conn, projector, batch_size)
    return _run_once(pool_or_conn, projector, batch_size)


def _run_once(conn: psycopg.Connection[Any], projector: Projector, batch_size: int) -> int:
    return run_round(conn, [projector], batch_size=batch_size).get(projector.name, 0)


def run_round(
    conn: psycopg.Connection[Any],
    projectors: Sequence[Projector],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, int]:
    """One batch for each of ``projectors`` this connection can lock, in ONE transaction.

    The log is read once for all of them (the union of their types, from the lowest of their
    checkpoints); each gets the events past its own checkpoint, and every checkpoint moves to
    where the read ended. Returns how many log positions each projection advanced. A failing
    ``apply`` rolls the whole round back and propagates: ``run_once`` per projector then tells
    which one fails without holding up the others (``projections.runner``).
    """
    return run_round_at(conn, projectors, batch_size=batch_size).advanced


class Round(NamedTuple):
    """What a round did: positions advanced per projection, and whether it stopped short of
    the log's head (a full batch or the scan window), so that more is waiting right now."""

    advanced: dict[str, int]
    more: bool


def run_round_at(
    conn: psycopg.Connection[Any],
    projectors: Sequence[Projector],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Round:
    """``run_round``, also telling whether more is waiting."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise ValueError("run_round commits its batch: pass a connection outside a transaction")
    by_name = {p.name: p for p in projectors}
    with conn.transaction():
        with conn.cursor(row_factory=tuple_row) as cur:
            locked = cur.execute(query("projection.lock_round"), {"names": list(by_name)})
            names = [str(r[0]) for r in locked.fetchall()]
            if not names:
                return Round({}, more=False)
            held = cur.execute(query("projection.round_checkpoints"), {"names": names}).fetchall()
        checkpoints = {str(r[0]): int(r[1]) for r in held}
        head = int(held[0][2])
        after = min(checkpoints.values())
        upto = min(head, after + batch_size * SCAN_WINDOW_BATCHES)
        behind = [by_name[n] for n, cp in checkpoints.items() if cp < upto]
        if not behind:
            return Round({}, more=False)
        types = sorted(set().union(*(p.message_types for p in behind)))
        params = {"after": after, "upto": upto, "types": types, "limit": batch_size}
        envelopes = read_batch(conn, params)
        # A full batch may have stopped short of upto; otherwise everything up to upto is done.
        reached = _last_position(envelopes) if len(envelopes) == batch_size else upto
        advanced: dict[str, int] = {}
        for projector in behind:
            checkpoint = checkpoints[projector.name]
            if checkpoint >= reached:
                continue
            mine = [
                e
                for e in envelopes
                if e.type in projector.message_types and (e.global_position or 0) > checkpoint
            ]
            if mine:
                projector.apply(conn, mine, projector.table.identifier)
            advanced[projector.name] = reached - checkpoint
        if advanced:
            params = {"names": list(advanced), "positions": [reached] * len(advanced)}
            with conn.pipeline():
                conn.execute(query("projection.save_checkpoints"), params)
                conn.execute(query("projection.notify_progress_many"), params)
        return Round(advanced, more=reached < head)


def save_checkpoint(conn: psycopg.Connection[Any], name: str, position: int) -> None:
    """Store the checkpoint and tell read-your-writes waiters, both on commit only."""
    params = {"name": name, "position": position}
    conn.execute(query("projection.save_checkpoint"), params)
    conn.execute(query("projection.notify_progress"), params)


def register(conn: psycopg.Connection[Any], projector: Projector) -> None:
    """Give a projection its checkpoint row now, so lag reports it before its first batch."""
    check_projector(projector)
    conn.execute(query("projection.register"), {"name": projector.name})


def projection_lag(conn: psycopg.Connection[Any]) -> list[ProjectionLag]:
    """How far each registered projection trails the head of the relayed log."""
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(query("projection.lag")).fetchall()
    return [ProjectionLag(str(r[0]), int(r[1]), int(r[2]), int(r[3]), float(r[4])) for r in rows]


def _scalar(
    conn: psycopg.Connection[Any], name: str, params: dict[str, Any] | None, default: Any = None
) -> Any:
    # An explicit row factory: pooled connections may be configured with dict rows.
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(query(name), params).fetchone()
    return default if row is None else row[0]
