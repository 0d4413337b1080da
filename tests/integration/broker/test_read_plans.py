"""A read looks its picked messages up by primary key, however stale the queue's statistics,
and finds the next hidden message without walking the visible ones.

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


def _queue(make_pgmq_broker: MakeBroker, name: str, *, ordered: bool) -> tuple[str, str]:
    """A fresh queue (FIFO when ``ordered``), and its table."""
    queue = f"{name}_fifo" if ordered else name
    broker: PgmqBroker = make_pgmq_broker(ordered_queues=[queue] if ordered else [])
    broker.ensure_queue(queue)
    return queue, f"pgmq.q_{queue}"


def _plan(conn: psycopg.Connection[Any], statement: str, params: dict[str, Any]) -> str:
    row = conn.execute(f"EXPLAIN (FORMAT JSON) {statement}", params).fetchone()
    assert row is not None
    return json.dumps(row[0])


@pytest.mark.parametrize(("statement", "ordered"), [("read", False), ("read_group_heads", True)])
def test_a_read_from_a_churned_queue_updates_by_primary_key(
    make_pgmq_broker: MakeBroker, database_url: str, statement: str, ordered: bool
) -> None:
    queue, table = _queue(make_pgmq_broker, "churned", ordered=ordered)
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


@pytest.mark.parametrize(("statement", "ordered"), [("read", False), ("read_group_heads", True)])
def test_the_next_hidden_message_is_found_without_walking_a_visible_backlog(
    make_pgmq_broker: MakeBroker, database_url: str, statement: str, ordered: bool
) -> None:
    queue, table = _queue(make_pgmq_broker, "backlog", ordered=ordered)
    with psycopg.connect(database_url, autocommit=True) as conn:
        # 3,000 visible messages, then 10 in flight (hidden for a minute).
        conn.execute(
            f"INSERT INTO {table} (vt, message, headers) SELECT clock_timestamp()"
            " + CASE WHEN i > 3000 THEN interval '1 minute' ELSE interval '0' END,"
            " jsonb_build_object('n', i), jsonb_build_object('x-pgmq-group', 'g' || i)"
            " FROM generate_series(1, 3010) AS i"
        )
        conn.execute(f"ANALYZE {table}")
        read = queue_query(statement, queue)
        params = {"queue": queue, "vt": 30, "qty": 32}
        with conn.transaction(force_rollback=True):  # ANALYZE runs it: take nothing for good
            row = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {read}", params).fetchone()
        assert row is not None
        got = conn.execute(read, params).fetchall()
    scans = [n for n in _nodes(row[0][0]["Plan"]) if n.get("Index Name") == f"q_{queue}_vt_idx"]
    assert scans, "the next hidden message is looked up in the vt index"
    assert all(n.get("Rows Removed by Filter", 0) < 100 for n in scans), scans
    assert 55 < got[0][-1] <= 60, "seconds until the first in-flight message shows"


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found
