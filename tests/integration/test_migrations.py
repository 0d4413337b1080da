"""Migrations: upgrade from empty, downgrade to empty, and the reference schema in step."""

from __future__ import annotations

import psycopg

from sql import migrate
from sql.schema_snapshot import REFERENCE_FILE, snapshot

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


class TestReferenceSchema:
    def test_migrated_database_matches_reference_schema(self, database_url: str) -> None:
        """If this fails after a new migration, run `haengbok schema-snapshot` and review the diff."""
        with psycopg.connect(database_url) as conn:
            current = snapshot(conn)
        assert current == REFERENCE_FILE.read_text(encoding="utf-8")
