"""The runner's hot queries read the global_position index, not the whole log."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from outbox.envelope import MessageContext, NewMessage
from outbox.log import append
from outbox.relay import RouteTable, claim_query, relay_statement
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


class TestRelayClaimPlan:
    def test_the_leaders_claim_walks_the_unrelayed_index_without_a_bitmap(
        self, database_url: str
    ) -> None:
        """A bitmap scan never marks dead index entries, so every claim re-read each row
        relayed since the last vacuum (1,700 index entries per claim in a drain bench); the
        relay's session statement turns bitmap scans off for its transaction, ahead of the
        relay statement (which is planned with them off)."""
        with psycopg.connect(database_url) as conn:
            conn.execute("ANALYZE outbox.event")  # statistics of an empty log, as at start
            conn.commit()
            messages = [NewMessage(OPENED, f"cart-{i}", {}) for i in range(2000)]
            append(conn, messages, MessageContext.new("test"))
            conn.commit()
            conn.execute(claim_query(), {"limit": 1950}).fetchall()
            conn.commit()
            with conn.transaction():
                conn.execute(query("outbox.relay_session"))
                table = RouteTable.load(conn)
                statement, _ = relay_statement(table.routes)
                row = conn.execute(
                    f"EXPLAIN (FORMAT JSON) {statement}",
                    {"limit": 500, "routes_digest": table.digest},
                ).fetchone()
                assert row is not None
                claim = json.dumps(row[0])
        assert "event_unrelayed_idx" in claim
        assert "Bitmap" not in claim
