"""`haengbok status`: the operator's first look, as tables in the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from rich.console import Console
from rich.table import Table

from api.ops_queries import OpsSnapshot, read_ops_snapshot_sync
from haengbok.payments.breaker import BreakerState
from sql import query


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """One row of ``ops.circuit_breaker``, its times in seconds from now by the database clock:
    how long ago it opened, and how long callers still wait (zero or less: the wait is over)."""

    name: str
    state: BreakerState
    failures: int
    opened_seconds_ago: float | None
    next_attempt_in_seconds: float | None


def read_circuit_breakers_sync(conn: psycopg.Connection[Any]) -> list[BreakerStatus]:
    """Every circuit breaker, by name (a breaker has a row from its first call on)."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query("status.circuit_breakers"))
        rows = cur.fetchall()
    return [
        BreakerStatus(
            name=str(r["name"]),
            state=BreakerState(r["state"]),
            failures=int(r["failures"]),
            opened_seconds_ago=_seconds(r["opened_seconds_ago"]),
            next_attempt_in_seconds=_seconds(r["next_attempt_in_seconds"]),
        )
        for r in rows
    ]


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def _next_trial(breaker: BreakerStatus) -> str:
    """When a call is let through again, as ``CircuitBreaker._admit`` decides it."""
    if breaker.state is BreakerState.CLOSED:
        return "-"  # every call goes through; there is nothing to try
    wait = breaker.next_attempt_in_seconds
    # _admit fails a call fast only while now < next_attempt_at (a missing one counts as now);
    # from then on the next call becomes the one trial of the cluster.
    if wait is None or wait <= 0:
        if breaker.state is BreakerState.HALF_OPEN:
            return "next call is a new trial"  # the running one never reported
        return "next call is the trial"
    if breaker.state is BreakerState.HALF_OPEN:
        return f"running, lost in {_age(wait)}"  # another caller may try then
    return f"in {_age(wait)}"


def _render_breakers(breakers: Sequence[BreakerStatus], console: Console) -> None:
    if not breakers:
        # An empty table would look like a failed read; rows appear only once a breaker is used.
        console.print(
            "[bold]circuit breakers[/bold]: none used yet (a breaker is listed from its first "
            "call on)"
        )
        return
    table = Table("breaker", "state", "failures", "opened", "next trial", title="circuit breakers")
    for b in breakers:
        closed = b.state is BreakerState.CLOSED
        opened = "-" if b.opened_seconds_ago is None else f"{_age(b.opened_seconds_ago)} ago"
        # The row counts failures only when the circuit opens (the threshold, then one more per
        # failed trial); while it is closed each process counts its own, and the row says 0.
        failures = "-" if closed else str(b.failures)
        table.add_row(b.name, b.state.value, failures, opened, _next_trial(b))
    console.print(table)


def render_snapshot(snap: OpsSnapshot, breakers: Sequence[BreakerStatus], console: Console) -> None:
    """Print the relay line, then the queue, projection, saga and circuit breaker tables, then a
    parked hint."""
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
    projections = Table(
        "projection", "checkpoint", "head", "lag (events)", "oldest unapplied", title="projections"
    )
    for p in snap.projections:
        projections.add_row(
            p.name, str(p.position), str(p.head), str(p.lag), _age(p.lag_seconds or None)
        )
    console.print(projections)
    sagas = Table("saga", "status", "instances", title="sagas")
    for s in snap.sagas:
        sagas.add_row(s.saga_type, s.status, str(s.instances))
    console.print(sagas)
    _render_breakers(breakers, console)
    parked_total = sum(snap.parked.values())
    if parked_total:
        console.print(
            f"[yellow]{parked_total} parked message(s)[/yellow]: inspect and retry them with "
            "GET /ops/dead-letters and POST /ops/dead-letters/{id}/retry"
        )


def render_status(
    conn: psycopg.Connection[Any], console: Console | None = None
) -> tuple[OpsSnapshot, list[str]]:
    """Read the ops snapshot and the circuit breakers on ``conn``, print them, and return the
    snapshot and what needs an operator's attention (``attention``)."""
    snap = read_ops_snapshot_sync(conn)
    # A transaction of its own: the snapshot's is over, and the breakers are not part of it.
    breakers = read_circuit_breakers_sync(conn)
    render_snapshot(snap, breakers, console or Console())
    return snap, attention(snap, breakers)


# A projection with events to apply that has not moved for this long, or an event the relay
# has left this long, is stuck rather than busy: a busy system moves within seconds.
STALLED_SECONDS = 60.0


def attention(snap: OpsSnapshot, breakers: Sequence[BreakerStatus]) -> list[str]:
    """What an operator must look at: parked messages and sagas (nothing retries them by
    itself), circuits that are not closed, and a projection or the relay stuck for over
    ``STALLED_SECONDS``. Empty when all is well; ``haengbok status`` then
    exits 0, and 2 otherwise, so cron and monitoring can act on it."""
    found = []
    parked = sum(snap.parked.values())
    if parked:
        found.append(f"{parked} parked message(s)")
    parked_sagas = sum(s.instances for s in snap.sagas if s.status == "PARKED")
    if parked_sagas:
        found.append(f"{parked_sagas} parked saga(s)")
    found.extend(
        f"circuit {b.name} {b.state.value}" for b in breakers if b.state is not BreakerState.CLOSED
    )
    found.extend(
        f"projection {p.name} has not moved for {p.stalled_seconds:.0f}s ({p.lag} behind):"
        " an event it cannot apply, or no runner (see the workers' log)"
        for p in snap.projections
        if p.stalled_seconds > STALLED_SECONDS
    )
    if snap.relay.oldest_seconds > STALLED_SECONDS:
        found.append(
            f"the relay has left an event unrelayed for {snap.relay.oldest_seconds:.0f}s"
            f" ({snap.relay.pending} pending): no worker relays"
        )
    return found
