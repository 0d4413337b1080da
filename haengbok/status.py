"""`haengbok status`: the operator's first look, as tables in the terminal."""

from __future__ import annotations

from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from api.ops_queries import OpsSnapshot, read_ops_snapshot_sync


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def render_snapshot(snap: OpsSnapshot, console: Console) -> None:
    """Print the relay line, then the queue, projection and saga tables, then a parked hint."""
    console.print(
        f"[bold]relay[/bold]: {snap.relay.pending} events waiting, oldest "
        f"{_age(snap.relay.oldest_seconds)}; log head (global position) {snap.log_head}"
    )
    queues = Table("queue", "messages", "visible", "oldest", "parked", title="queues")
    for q in snap.queues:
        queues.add_row(
            q.queue_name, str(q.length), str(q.visible_length), _age(q.oldest_age_seconds),
            str(snap.parked.get(q.queue_name, 0)),
        )  # fmt: skip
    # A queue dropped while messages of it were parked: its dead letters must still show.
    for name in sorted(set(snap.parked) - {q.queue_name for q in snap.queues}):
        queues.add_row(name, "-", "-", "-", str(snap.parked[name]))
    console.print(queues)
    projections = Table("projection", "checkpoint", "head", "lag (events)", title="projections")
    for p in snap.projections:
        projections.add_row(p.name, str(p.position), str(p.head), str(p.lag))
    console.print(projections)
    sagas = Table("saga", "status", "instances", title="sagas")
    for s in snap.sagas:
        sagas.add_row(s.saga_type, s.status, str(s.instances))
    console.print(sagas)
    parked_total = sum(snap.parked.values())
    if parked_total:
        console.print(
            f"[yellow]{parked_total} parked message(s)[/yellow]: inspect and retry them with "
            "GET /ops/dead-letters and POST /ops/dead-letters/{id}/retry"
        )


def render_status(conn: psycopg.Connection[Any], console: Console | None = None) -> OpsSnapshot:
    """Read the ops snapshot on ``conn``, print it, and return it."""
    snap = read_ops_snapshot_sync(conn)
    render_snapshot(snap, console or Console())
    return snap
