"""A read looks its picked messages up by primary key, however stale the queue's statistics.

Busy queues churn: thousands of messages inserted and deleted a minute, so the statistics
count many more rows than the few live ones. A pick joined to the UPDATE as a table was then
planned as a hash join over a sequential scan of the whole heap, dead tuples included (seen in
the Dining steady bench: 2,000 pages read per FIFO read of the saga queue, the largest
statement there).
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from outbox.broker import PgmqBroker
from sql import queue_query
from tests.integration.broker.test_transient_failures import MakeBroker


def _plan(conn: psycopg.Connection[Any], statement: str, params: dict[str, Any]) -> str:
    row = conn.execute(f"EXPLAIN (FORMAT JSON) {statement}", params).fetchone()
    assert row is not None
    return json.dumps(row[0])


@pytest.mark.parametrize(("statement", "ordered"), [("read", False), ("read_group_heads", True)])
def test_a_read_from_a_churned_queue_updates_by_primary_key(
    make_pgmq_broker: MakeBroker, database_url: str, statement: str, ordered: bool
) -> None:
    queue = "churned_fifo" if ordered else "churned"
    broker: PgmqBroker = make_pgmq_broker(ordered_queues=[queue] if ordered else [])
    broker.ensure_queue(queue)
    table = f"pgmq.q_{queue}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {table} (vt, message, headers) SELECT clock_timestamp(),"
            " jsonb_build_object('n', i), jsonb_build_object('x-pgmq-group', 'g' || i)"
            " FROM generate_series(1, 3000) AS i"
        )
        conn.execute(f"ANALYZE {table}")  # statistics of the busy moment
        conn.execute(f"DELETE FROM {table} WHERE msg_id > 60")  # then most are consumed
        read = queue_query(statement, queue)
        params = {"queue": queue, "vt": 30, "qty": 32}
        plan = _plan(conn, read, params)
        got = conn.execute(read, params).fetchall()
    assert "Seq Scan" not in plan
    assert f"q_{queue}_pkey" in plan
    assert sorted(r[0] for r in got) == list(range(1, 33)), "the 32 oldest, once each"
