"""The runner's hot queries read the global_position index, not the whole log."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from outbox.envelope import MessageContext, NewMessage
from outbox.log import append
from sql import query
from tests.integration.projections.support import relay_positions
from tests.integration.projections.timeline import ITEM_ADDED, OPENED, UNHANDLED


def _plan(conn: psycopg.Connection[Any], name: str, params: dict[str, Any] | None) -> str:
    row = conn.execute(f"EXPLAIN (FORMAT JSON) {query(name)}", params).fetchone()
    assert row is not None
    return json.dumps(row[0])


class TestHotQueryPlans:
    def test_head_and_batch_use_the_global_position_index(self, database_url: str) -> None:
        types = [OPENED, ITEM_ADDED, UNHANDLED]
        with psycopg.connect(database_url) as conn:
            messages = [NewMessage(types[i % 3], f"cart-{i % 50}", {}) for i in range(6000)]
            append(conn, messages, MessageContext.new("test"))
        relay_positions(database_url)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("ANALYZE outbox.event")
            head = _plan(conn, "projection.head", None)
            batch = _plan(
                conn,
                "projection.batch",
                {"after": 3000, "upto": 4000, "types": [OPENED, ITEM_ADDED], "limit": 500},
            )
        for plan in (head, batch):
            assert "event_global_position_key" in plan
            assert "Seq Scan" not in plan
