"""Migrations: upgrade from empty, downgrade to empty, and the reference schema in step."""

from __future__ import annotations

import uuid

import dramatiq
import psycopg
import pytest
from psycopg.rows import dict_row

from outbox import wire
from outbox.envelope import Envelope, MessageContext, NewMessage
from outbox.log import append
from outbox.relay import claim_query, sync_routes
from outbox.sagas import DEADLINE_TYPE, SagaRunner
from sql import migrate
from sql.schema_snapshot import REFERENCE_FILE, snapshot
from tests.example.shop import OrderSaga

CONTEXT_SCHEMAS = {
    "reservation", "deposit", "restaurant", "recommendation", "customer_center",
    "movie", "booking", "payment", "seat", "ticket", "my_page",
    "outbox", "saga", "projection", "reporting", "ops", "pgmq",
}  # fmt: skip


def _schemas(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
            "AND nspname NOT IN ('information_schema', 'public')"
        ).fetchall()
    return {r[0] for r in rows}


class TestUpgradeFromEmpty:
    def test_creates_every_context_schema_and_pgmq(self, empty_database_url: str) -> None:
        migrate.upgrade(empty_database_url)
        assert _schemas(empty_database_url) == CONTEXT_SCHEMAS
        with psycopg.connect(empty_database_url) as conn:
            conn.execute("SELECT pgmq.create('migration_probe')")
            conn.execute("SELECT pgmq.send('migration_probe', '{\"a\": 1}'::jsonb)")
            assert conn.execute("SELECT count(*) FROM pgmq.q_migration_probe").fetchone() == (1,)

    def test_downgrade_to_base_leaves_nothing_and_upgrades_again(
        self, empty_database_url: str
    ) -> None:
        migrate.upgrade(empty_database_url)
        migrate.downgrade(empty_database_url, "base")
        assert _schemas(empty_database_url) == set()
        migrate.upgrade(empty_database_url)
        assert _schemas(empty_database_url) == CONTEXT_SCHEMAS


class TestSagaDeadlineDowngrade:
    def test_below_0009_a_waiting_saga_gets_the_deadline_message_that_release_fires_by(
        self, empty_database_url: str
    ) -> None:
        url = empty_database_url
        migrate.upgrade(url)
        saga_id = uuid.uuid4()
        sub = SagaRunner(OrderSaga()).subscriber()
        with psycopg.connect(url) as conn:
            sync_routes(conn, [sub.route])
            conn.execute(
                "INSERT INTO saga.instance (saga_id, saga_type, status, step, version,"
                " correlation_id, deadline_at, deadline_name)"
                " VALUES (%s, 'order', 'RUNNING', 'reserving_stock', 3, %s,"
                " now() + interval '1 hour', 'stock')",
                [saga_id, saga_id],
            )
        migrate.downgrade(url, "0008_saga_deadline_reuse")
        with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute("SELECT * FROM saga.instance").fetchone()
            assert row is not None and row["deadline_msg_at"] == row["deadline_at"]
            msg = cur.execute(
                "SELECT * FROM pgmq.q_saga_order WHERE msg_id = %s", [row["deadline_msg_id"]]
            ).fetchone()
        assert msg is not None and msg["vt"] == row["deadline_at"]
        message = dramatiq.Message(**msg["message"])  # as the broker decodes it
        assert (message.queue_name, message.actor_name) == ("saga_order", sub.name)
        env = Envelope.from_json(message.args[0])
        assert env.type == DEADLINE_TYPE and env.correlation_id == saga_id
        assert env.payload == {"saga_id": str(saga_id), "name": "stock", "version": 3}
        assert msg["headers"][wire.GROUP_HEADER] == f"deadline-{env.event_id}"


class TestRelayClaimIndex:
    def test_from_0010_unrelayed_rows_are_out_of_the_global_position_index_which_stays_unique(
        self, empty_database_url: str
    ) -> None:
        url = empty_database_url
        migrate.upgrade(url)
        with psycopg.connect(url) as conn:
            messages = [NewMessage("test.Opened", f"cart-{i}", {}) for i in range(3)]
            append(conn, messages, MessageContext.new("test"))
            conn.commit()
            claimed = conn.execute(claim_query(), {"limit": 2}).fetchall()
            conn.commit()
            assert len(claimed) == 2
            definition = conn.execute(
                "SELECT pg_get_indexdef('outbox.event_global_position_key'::regclass)"
            ).fetchone()
            # Partial: the relay's "global_position IS NULL" claim cannot read it, and an
            # append writes no entry into it.
            assert definition is not None
            assert definition[0].endswith("WHERE (global_position IS NOT NULL)")
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(
                    "UPDATE outbox.event SET global_position = 1 WHERE global_position IS NULL"
                )
        migrate.downgrade(url, "0009_saga_deadline_scheduler")
        with psycopg.connect(url) as conn:
            kind = conn.execute(
                "SELECT contype FROM pg_constraint WHERE conname = 'event_global_position_key'"
            ).fetchone()
        assert kind == ("u",)
        migrate.upgrade(url)


class TestReferenceSchema:
    def test_migrated_database_matches_reference_schema(self, database_url: str) -> None:
        """If this fails after a new migration, run `haengbok schema-snapshot` and review the diff."""
        with psycopg.connect(database_url) as conn:
            current = snapshot(conn)
        assert current == REFERENCE_FILE.read_text(encoding="utf-8")
