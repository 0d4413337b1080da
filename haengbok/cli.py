"""The `haengbok` command."""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from haengbok.settings import Settings


def _database(settings: Settings) -> tuple[str, Any]:
    """DATABASE_URL, or the embedded server (started or reused) and its database."""
    from haengbok.embedded import resolve_database_url

    return resolve_database_url(settings.database_url, settings.data_dir, settings.database_name)


@click.group()
def main() -> None:
    """Haengbok: reservation platform (Dining, Cinema) on PostgreSQL."""


@main.command()
def migrate() -> None:
    """Apply all migrations (alembic upgrade head)."""
    from sql import migrate as migrations

    url, _server = _database(Settings.from_env())
    migrations.upgrade(url)
    click.echo("migrations applied")


@main.command("schema-snapshot")
@click.option("--check", is_flag=True, help="Exit 1 if the reference file differs.")
def schema_snapshot(check: bool) -> None:
    """Write sql/reference_schema.txt from a freshly migrated scratch database."""
    import uuid

    import psycopg
    from psycopg import sql as pgsql

    from haengbok.dburl import with_database
    from sql import migrate as migrations
    from sql.schema_snapshot import REFERENCE_FILE, snapshot

    url, _server = _database(Settings.from_env())
    scratch = f"snapshot_{uuid.uuid4().hex[:8]}"
    admin = with_database(url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(scratch)))
    try:
        migrations.upgrade(with_database(url, scratch))
        with psycopg.connect(with_database(url, scratch)) as conn:
            text = snapshot(conn)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                pgsql.SQL("DROP DATABASE {} WITH (FORCE)").format(pgsql.Identifier(scratch))
            )
    if check:
        same = REFERENCE_FILE.read_text(encoding="utf-8") == text
        click.echo("reference schema is up to date" if same else "reference schema differs")
        sys.exit(0 if same else 1)
    REFERENCE_FILE.write_text(text, encoding="utf-8")
    click.echo(f"wrote {REFERENCE_FILE}")


@main.command()
@click.option("--workers", default=1, show_default=True, help="Worker processes to run.")
def up(workers: int) -> None:
    """Everything on this machine: database, migrations, API, workers, under a supervisor."""
    from haengbok.logs import configure_logging
    from haengbok.supervisor import ChildSpec, Supervisor
    from sql import migrate as migrations

    settings = Settings.from_env()
    configure_logging(settings)
    url, server = _database(settings)
    migrations.upgrade(url)
    exe = [sys.executable, "-m", "haengbok.cli"]
    env = {"DATABASE_URL": url}
    children = [ChildSpec("api", [*exe, "api"], env)]
    children += [ChildSpec(f"worker-{i + 1}", [*exe, "worker"], env) for i in range(workers)]
    sup = Supervisor(children)
    signal.signal(signal.SIGINT, lambda *_: sup.stop())
    signal.signal(signal.SIGTERM, lambda *_: sup.stop())
    base = f"http://{settings.api_host}:{settings.api_port}"
    where = "embedded PostgreSQL in " + str(settings.data_dir) if server else "DATABASE_URL"
    click.echo(
        f"\nHaengbok is starting ({where}).\n"
        f"  API docs (Swagger): {base}/schema/swagger\n"
        f"  OpenAPI JSON:       {base}/schema/openapi.json\n"
        f"  Health:             {base}/health/ready\n"
        f"  Metrics:            {base}/metrics\n"
        f"  A token:            .venv/bin/haengbok token --role customer --subject alice\n"
        f"  Queues and lag:     .venv/bin/haengbok status\n"
        "Press Ctrl-C to stop everything.\n"
    )
    sup.run()
    if server is not None:
        server.stop()
    click.echo("stopped")


if __name__ == "__main__":
    main()
