"""Rebuilding a read model from the whole log without taking it offline.

The long part (replaying the log into a fresh table) runs in short transactions beside the
live table, which keeps serving reads and keeps being caught up by the runner. Only the swap
is exclusive, and it is short: wait for the runner's current batch, lock the live table, replay
the few events that arrived since, swap the tables and set the checkpoint, in one transaction.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from projections.projector import Projector, Table, check_projector
from projections.runtime import DEFAULT_BATCH_SIZE, project_batch, save_checkpoint
from projections.swap import replace_table, table_exists
from sql import query

log = logging.getLogger(__name__)

ConnectionFactory = Callable[[], psycopg.Connection[Any]]
ProgressCallback = Callable[[int, int], None]


def rebuild(
    connect: ConnectionFactory,
    projector: Projector,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
    lock_timeout: float = 10.0,
) -> int:
    """Replay the log into a fresh table, then swap it in; returns the new checkpoint.

    ``on_progress(done, total)`` is called after each committed batch with the global position
    reached and the log head at that moment (the head grows while the log is written). The swap
    gives up after ``lock_timeout`` seconds of waiting for readers or the runner, leaving the
    live table as it was; then run the rebuild again at a quieter time.
    """
    check_projector(projector)
    fresh = projector.table.with_suffix(f"_rebuild_{uuid.uuid4().hex[:8]}")
    with connect() as conn:
        with conn.transaction():
            projector.create_table(conn, fresh.identifier)
        try:
            position = _replay(conn, projector, fresh, batch_size, on_progress)
            with conn.transaction():
                position = _swap(conn, projector, fresh, position, batch_size, lock_timeout)
        except BaseException:
            _drop_quietly(conn, fresh)
            raise
    if on_progress is not None:
        on_progress(position, position)
    return position


def _replay(
    conn: psycopg.Connection[Any],
    projector: Projector,
    fresh: Table,
    batch_size: int,
    on_progress: ProgressCallback | None,
) -> int:
    # One transaction per batch: no snapshot is held for the whole replay (vacuum keeps
    # working) and nothing here locks what the runner or readers use.
    position = 0
    while True:
        with conn.transaction():
            position, head = project_batch(conn, projector, fresh.identifier, position, batch_size)
        if on_progress is not None:
            on_progress(position, head)
        # Leave a tail of at most one batch to the swap, so its exclusive lock is held briefly.
        if head - position <= batch_size:
            return position


def _swap(
    conn: psycopg.Connection[Any],
    projector: Projector,
    fresh: Table,
    position: int,
    batch_size: int,
    lock_timeout: float,
) -> int:
    conn.execute(
        query("projection.set_lock_timeout"), {"timeout": f"{max(1, int(lock_timeout * 1000))}ms"}
    )
    # Advisory lock first, as the runner takes it: the runner's batch in flight finishes, and
    # no new one starts until we commit.
    conn.execute(query("projection.lock"), {"name": projector.name})
    live = projector.table
    if table_exists(conn, live):
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(live.identifier))
    while True:
        position, head = project_batch(conn, projector, fresh.identifier, position, batch_size)
        if position >= head:
            break
    replace_table(conn, live, fresh)
    save_checkpoint(conn, projector.name, position)
    log.info("rebuilt projection %s into %s at position %d", projector.name, live, position)
    return position


def _drop_quietly(conn: psycopg.Connection[Any], fresh: Table) -> None:
    # Best effort: if the connection itself died, the half-built table stays behind under its
    # unmistakable *_rebuild_* name; dropping it by hand is safe.
    with contextlib.suppress(psycopg.Error):
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        with conn.transaction():
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(fresh.identifier))
        log.warning("rebuild abandoned; dropped %s", fresh)
