"""Alembic environment: SQL-first revisions, run in one transaction under an advisory lock."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

# Several pods may run `haengbok migrate` at once; the lock makes them take turns.
MIGRATION_LOCK = 7_424_651_001


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by sql.migrate"
    engine = create_engine(url, poolclass=None)
    with engine.connect() as connection:
        context.configure(
            connection=connection, transactional_ddl=True, transaction_per_migration=False
        )
        with context.begin_transaction():
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported; run against a database")
run_migrations_online()
