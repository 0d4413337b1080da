"""Appending events and relaying them (global positions only) without the relay process."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from outbox.envelope import MessageContext, NewMessage
from outbox.log import append
from outbox.relay import claim_query
from projections.projector import Table
from projections.runner import ProjectionRunner
from sql import query


def append_events(
    url: str, stream: str, *types: str, payload: Mapping[str, Any] | None = None
) -> list[int]:
    """Append one event per type to ``stream`` in one transaction; their insert positions."""
    with psycopg.connect(url) as conn:
        messages = [NewMessage(t, stream, dict(payload or {})) for t in types]
        return [a.position for a in append(conn, messages, MessageContext.new("test"))]


def relay_positions(url: str, limit: int = 10_000) -> int:
    """Assign global positions exactly as the relay does, then wake the projection runners."""
    with psycopg.connect(url) as conn, conn.transaction():
        leader = conn.execute(query("outbox.relay_lock")).fetchone()
        assert leader is not None and leader[0] is True, "no relay runs in tests, so this must lead"
        claimed = len(conn.execute(claim_query(), {"limit": limit}).fetchall())
        conn.execute(query("projection.wakeup"))
    return claimed


def head(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query("projection.head")).fetchone()
    assert row is not None
    return int(row[0])


def checkpoint(url: str, name: str) -> int | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(query("projection.checkpoint"), {"name": name}).fetchone()
    return None if row is None else int(row[0])


def rows(url: str, table: Table) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        stmt = sql.SQL("SELECT * FROM {} ORDER BY stream").format(table.identifier)
        return conn.execute(stmt).fetchall()


def create_live_table(url: str, projector: Any) -> None:
    """Stands in for the migration that creates a real projector's live table."""
    with psycopg.connect(url) as conn:
        projector.create_table(conn, projector.table.identifier)


@contextmanager
def running(
    url: str, projectors: Sequence[Any], poll_interval: float, **options: Any
) -> Iterator[threading.Thread]:
    """A ProjectionRunner on its own thread for the duration of the block."""
    stop = threading.Event()
    runner = ProjectionRunner(
        lambda: psycopg.connect(url), projectors, poll_interval=poll_interval, **options
    )
    thread = threading.Thread(target=runner.run, args=(stop,), name="projection-runner")
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the runner stops within its poll interval"


def listening(url: str, channel: str) -> int:
    """How many sessions of this database last ran ``LISTEN channel`` and now idle."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state = 'idle' AND query = %s",
            [f'LISTEN "{channel}"'],
        ).fetchone()
    assert row is not None
    return int(row[0])
