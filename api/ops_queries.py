"""The operational state of the platform, read from PostgreSQL in one snapshot.

``/metrics`` turns it into gauges at scrape time; ``haengbok status`` prints it. Both the async
(API) and the sync (CLI) connection are supported; the SQL is in ``sql/queries/ops.sql``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from sql import query

# Name -> named query; each result is a list of tuples in the column order of the query.
_READS: dict[str, str] = {
    "queues": "ops.queue_metrics",
    "relay": "outbox.relay_lag",
    "head": "ops.log_head",
    "projections": "ops.projection_lag",
    "sagas": "ops.saga_counts",
    "parked": "ops.parked_counts",
}
SCRAPE_TIMEOUT_MS = 2000


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One pgmq queue: messages in it (all, visible) and message ages in seconds."""

    queue_name: str
    length: int
    visible_length: int
    oldest_age_seconds: float | None
    newest_age_seconds: float | None
    total_messages: int


@dataclass(frozen=True, slots=True)
class RelayLag:
    """Committed events the relay has not yet given a global position (and so not sent)."""

    pending: int
    oldest_seconds: float


@dataclass(frozen=True, slots=True)
class ProjectionLag:
    """How far a projection's checkpoint is behind the head of the relayed log."""

    name: str
    position: int
    head: int
    lag: int
    #: Age of the oldest relayed event it has not applied (0 when caught up).
    lag_seconds: float = 0.0
    #: How long it has not moved while it has events to apply (0 when caught up).
    stalled_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class SagaCount:
    saga_type: str
    status: str
    instances: int


@dataclass(frozen=True, slots=True)
class OpsSnapshot:
    """Everything an operator looks at first: queues, relay, projections, sagas, dead letters."""

    queues: Sequence[QueueStats]
    relay: RelayLag
    log_head: int
    projections: Sequence[ProjectionLag]
    sagas: Sequence[SagaCount]
    parked: Mapping[str, int]


def _age(value: Any) -> float | None:
    return None if value is None else float(value)


def _snapshot(rows: Mapping[str, list[tuple[Any, ...]]]) -> OpsSnapshot:
    relay_row = rows["relay"][0]
    return OpsSnapshot(
        queues=[
            QueueStats(str(r[0]), int(r[1]), int(r[2] or 0), _age(r[3]), _age(r[4]), int(r[5]))
            for r in rows["queues"]
        ],
        relay=RelayLag(pending=int(relay_row[0]), oldest_seconds=float(relay_row[1])),
        log_head=int(rows["head"][0][0]),
        projections=[
            ProjectionLag(str(r[0]), int(r[1]), int(r[2]), int(r[3]), float(r[4]), float(r[5]))
            for r in rows["projections"]
        ],
        sagas=[SagaCount(str(r[0]), str(r[1]), int(r[2])) for r in rows["sagas"]],
        parked={str(r[0]): int(r[1]) for r in rows["parked"]},
    )


async def read_ops_snapshot(conn: psycopg.AsyncConnection[Any]) -> OpsSnapshot:
    """Read the snapshot in one transaction (one consistent view) with a statement timeout."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query("ops.scrape_guard"), {"timeout_ms": SCRAPE_TIMEOUT_MS})
        for name, sql_name in _READS.items():
            await cur.execute(query(sql_name))
            rows[name] = await cur.fetchall()
    return _snapshot(rows)


def read_ops_snapshot_sync(conn: psycopg.Connection[Any]) -> OpsSnapshot:
    """``read_ops_snapshot`` for synchronous connections (the CLI)."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query("ops.scrape_guard"), {"timeout_ms": SCRAPE_TIMEOUT_MS})
        for name, sql_name in _READS.items():
            cur.execute(query(sql_name))
            rows[name] = cur.fetchall()
    return _snapshot(rows)
