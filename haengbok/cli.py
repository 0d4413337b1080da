"""The `haengbok` command."""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from haengbok.settings import Settings
from haengbok.signals import stop_on_signals


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
    from haengbok.bootstrap import record_routes
    from sql import migrate as migrations

    settings = Settings.from_env()
    url, _server = _database(settings)
    migrations.upgrade(url)
    count = record_routes(settings, url)
    click.echo(f"migrations applied; {count} subscriptions recorded")


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


def _worker_metrics_line(settings: Settings, workers: int) -> str:
    first = settings.worker_metrics_port
    if not first:
        return ""
    host = settings.worker_metrics_host
    ports = ", ".join(f"http://{host}:{first + i}/metrics" for i in range(workers))
    return f"\n  Worker metrics:     {ports}"


@main.command()
@click.option("--workers", default=1, show_default=True, help="Worker processes to run.")
def up(workers: int) -> None:
    """Everything on this machine: database, migrations, API, workers, under a supervisor."""
    from haengbok.bootstrap import record_routes
    from haengbok.demo import load_demo, walkthrough
    from haengbok.logs import configure_logging
    from haengbok.supervisor import ChildSpec, Supervisor
    from sql import migrate as migrations

    settings = Settings.from_env()
    configure_logging(settings)
    url, server = _database(settings)
    migrations.upgrade(url)
    record_routes(settings, url)
    demo_restaurants = load_demo(url)
    exe = [sys.executable, "-m", "haengbok.cli"]
    children: list[ChildSpec] = []
    # A provider named in the environment is used as is; otherwise the sandbox runs here.
    payment_url = os.environ.get("HAENGBOK_PAYMENT_URL", "")
    if not payment_url:
        port = settings.payment_sandbox_port
        payment_url = f"http://127.0.0.1:{port}"
        sandbox_argv = [*exe, "payments-sandbox", "--host", "127.0.0.1", "--port", str(port)]
        children.append(ChildSpec("payments-sandbox", sandbox_argv))
    env = {"DATABASE_URL": url, "HAENGBOK_PAYMENT_URL": payment_url}
    children.append(ChildSpec("api", [*exe, "api"], env))
    # Each worker's liveness: a heartbeat file of its own, which the supervisor watches.
    beats = Path(tempfile.mkdtemp(prefix="haengbok-heartbeats-"))
    atexit.register(shutil.rmtree, beats, ignore_errors=True)
    # HAENGBOK_WORKER_METRICS_PORT names the first worker's metrics port; the next get the
    # ports after it (0: each a free one, named in its "worker running" line).
    metrics_base = settings.worker_metrics_port
    children += [
        ChildSpec(
            f"worker-{i + 1}",
            [*exe, "worker"],
            env if not metrics_base
            else {**env, "HAENGBOK_WORKER_METRICS_PORT": str(metrics_base + i)},
            heartbeat_file=beats / f"worker-{i + 1}",
        )
        for i in range(workers)
    ]  # fmt: skip
    sup = Supervisor(
        children,
        grace_seconds=settings.shutdown_grace_seconds + 5,
        stale_seconds=settings.heartbeat_stale_seconds,
    )
    stop_on_signals(sup.stop)
    base = f"http://{settings.api_host}:{settings.api_port}"
    where = "embedded PostgreSQL in " + str(settings.data_dir) if server else "DATABASE_URL"
    click.echo(
        f"\nHaengbok is starting ({where}).\n"
        f"  API docs (Swagger): {base}/schema/swagger\n"
        f"  OpenAPI JSON:       {base}/schema/openapi.json\n"
        f"  Health:             {base}/health/ready\n"
        f"  Metrics:            {base}/metrics{_worker_metrics_line(settings, workers)}\n"
        f"  A token:            .venv/bin/haengbok token --role customer --subject alice\n"
        f"  Queues and lag:     .venv/bin/haengbok status\n"
        f"  Payment provider:   {payment_url} (sandbox faults: PUT /admin/behaviour)\n"
        "Press Ctrl-C to stop everything.\n"
    )
    click.echo(walkthrough(base, demo_restaurants[0], payment_url))
    sup.run()
    if server is not None:
        server.stop(force=True)
    click.echo("stopped")


@main.command()
@click.option("--host", default=None, help="Bind address (default HAENGBOK_API_HOST).")
@click.option("--port", default=None, type=int, help="Port (default HAENGBOK_API_PORT).")
@click.option("--processes", default=1, show_default=True, help="uvicorn worker processes.")
def api(host: str | None, port: int | None, processes: int) -> None:
    """Serve the REST API (uvicorn). On SIGTERM readiness fails first, then it drains."""
    import dataclasses

    import uvicorn

    from haengbok.bootstrap import build_api
    from haengbok.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings)
    url, _server = _database(settings)
    os.environ["DATABASE_URL"] = url
    settings = dataclasses.replace(settings, database_url=url)
    host, port = host or settings.api_host, port or settings.api_port
    if processes > 1:
        from haengbok.api_processes import ApiProcesses, ChildOptions

        options = ChildOptions(
            host=host, port=port, drain_seconds=settings.drain_seconds,
            graceful_seconds=int(settings.shutdown_grace_seconds),
        )  # fmt: skip
        sys.exit(ApiProcesses(options, processes).run())
    from api.server import DrainingServer

    app = build_api(settings)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False,
        # After the drain, in-flight requests get this long: Kubernetes kills at 30 s.
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )  # fmt: skip
    DrainingServer(config, app, drain_seconds=settings.drain_seconds).run()


@main.command()
@click.option("--threads", default=None, type=int, help="Worker threads (HAENGBOK_WORKER_THREADS).")
@click.option(
    "--nice",
    default=None,
    type=int,
    help="CPU priority below the API's, 0-19 "
    f"(HAENGBOK_WORKER_NICE, default {Settings.worker_nice}).",
)
def worker(threads: int | None, nice: int | None) -> None:
    """Run Dramatiq worker threads on pgmq, the relay and the projections until SIGTERM."""
    import dataclasses
    import threading

    from haengbok import bootstrap
    from haengbok.heartbeat import Heartbeat
    from haengbok.logs import configure_logging
    from haengbok.worker import WorkerProcess, lower_cpu_priority
    from haengbok.worker_metrics import MetricsServerError

    settings = Settings.from_env()
    if threads:
        settings = dataclasses.replace(settings, worker_threads=threads)
    # First, before any thread exists: threads inherit the nice value of their creator.
    try:
        in_effect = lower_cpu_priority(settings.worker_nice if nice is None else nice)
    except ValueError as exc:
        raise click.UsageError(f"{exc} (HAENGBOK_WORKER_NICE or --nice)") from exc
    configure_logging(settings)
    url, _server = _database(settings)
    bootstrap.record_routes(settings, url)
    proc = WorkerProcess(
        settings,
        url,
        subscribers=bootstrap.subscribers(settings, url),
        projectors=bootstrap.projectors(),
    )
    stop = threading.Event()
    stop_on_signals(stop.set)
    try:
        proc.start()
    except MetricsServerError as exc:
        raise click.ClickException(str(exc)) from exc
    # Everything built so far (modules, the app's wiring, pools) lives as long as the process:
    # out of the collector's sight, a full collection walks only what came after. A worker's
    # full collections had taken 75-89 ms each, with the GIL held.
    gc.freeze()
    heartbeat = None
    if settings.heartbeat_file is not None:
        heartbeat = Heartbeat(
            settings.heartbeat_file,
            interval_seconds=settings.heartbeat_interval_seconds,
            checks=[proc.threads_alive],
        )
        heartbeat.start()
    metrics = (
        f"metrics on http://{settings.worker_metrics_host}:{proc.metrics_port}/metrics"
        if proc.metrics_port is not None
        else "no metrics port"
    )
    click.echo(
        f"worker running (pid {os.getpid()}, nice {in_effect}, {gc.get_freeze_count()} objects "
        f"frozen, {metrics}); SIGTERM or Ctrl-C to stop",
        err=True,
    )
    stop.wait()
    if heartbeat is not None:
        heartbeat.stop()
    proc.stop(timeout_seconds=settings.shutdown_grace_seconds)


@main.command()
@click.argument("name", required=False)
@click.option("--batch-size", default=500, show_default=True, help="Events per transaction.")
def rebuild(name: str | None, batch_size: int) -> None:
    """Rebuild the read model of projection NAME from the whole log, then swap it in; without
    NAME, list the projections. Safe while the system runs: readers keep the old table until
    the swap, and the runner goes on from the rebuilt checkpoint."""
    import psycopg

    from haengbok import bootstrap
    from haengbok.logs import configure_logging
    from projections.rebuild import rebuild as rebuild_projection

    settings = Settings.from_env()
    configure_logging(settings)
    known = {p.name: p for p in bootstrap.projectors()}
    if name is None:
        for known_name in sorted(known):
            click.echo(known_name)
        return
    projector = known.get(name)
    if projector is None:
        raise click.UsageError(
            f"no projection {name!r}; the projections are: {', '.join(sorted(known))}"
        )
    url, _server = _database(settings)
    shown = {"at": 0.0}

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - shown["at"] >= 1.0 or done >= total:
            shown["at"] = now
            percent = 100.0 if total == 0 else min(100.0, 100.0 * done / total)
            click.echo(f"  {name}: {done:,} of {total:,} log positions ({percent:.0f} %)", err=True)

    started = time.monotonic()
    try:
        position = rebuild_projection(
            lambda: psycopg.connect(url, application_name="haengbok-rebuild"), projector,
            batch_size=batch_size, on_progress=progress,
        )  # fmt: skip
    except psycopg.errors.LockNotAvailable as exc:
        raise click.ClickException(
            f"the swap waited too long for readers or the runner ({exc}); the live table is as "
            "it was: run the rebuild again at a quieter time"
        ) from exc
    click.echo(
        f"rebuilt {name} up to log position {position:,} in {time.monotonic() - started:.1f}s"
    )


@main.command("worker-alive")
@click.option(
    "--max-age",
    type=float,
    default=None,
    help="Seconds the heartbeat may be old (default HAENGBOK_HEARTBEAT_STALE_SECONDS, 30).",
)
def worker_alive(max_age: float | None) -> None:
    """Liveness probe: exit 0 while the worker's heartbeat file (HAENGBOK_HEARTBEAT_FILE) is
    fresh, 1 when it is stale or missing (the worker is stuck: restart it)."""
    from haengbok.heartbeat import heartbeat_age

    settings = Settings.from_env()
    if settings.heartbeat_file is None:
        raise click.UsageError("set HAENGBOK_HEARTBEAT_FILE to the worker's heartbeat file")
    limit = settings.heartbeat_stale_seconds if max_age is None else max_age
    age = heartbeat_age(settings.heartbeat_file)
    if age is None:
        click.echo(
            f"no heartbeat at {settings.heartbeat_file}: the worker is not running", err=True
        )
        raise SystemExit(1)
    if age > limit:
        click.echo(
            f"heartbeat {age:.1f}s old (limit {limit:g}s): the worker is stuck; restart it",
            err=True,
        )
        raise SystemExit(1)
    click.echo(f"alive: heartbeat {age:.1f}s old")


@main.command("payments-sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address.")
@click.option(
    "--port", default=None, type=int, help="Port (default HAENGBOK_PAYMENT_SANDBOX_PORT)."
)
@click.option("--seed", default=None, type=int, help="Seed the injected faults (repeatable runs).")
def payments_sandbox(host: str, port: int | None, seed: int | None) -> None:
    """Serve the sandbox payment provider (state in memory: a restart forgets every charge)."""
    import uvicorn

    from api.server import DrainingServer
    from haengbok.logs import configure_logging
    from haengbok.payments.sandbox import create_sandbox_app
    from haengbok.payments.sandbox_ledger import SandboxLedger

    settings = Settings.from_env()
    configure_logging(settings)
    app = create_sandbox_app(SandboxLedger(seed))
    config = uvicorn.Config(
        app, host=host, port=port or settings.payment_sandbox_port, log_level="warning",
        access_log=False,
    )  # fmt: skip
    # No drain window (nothing balances traffic to it), but the same clean exit 0 on SIGTERM.
    DrainingServer(config, app, drain_seconds=0).run()


@main.command()
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    help="customer, restaurant_owner, cinema_admin, analyst or ops (repeatable).",
)
@click.option("--subject", default="dev-user", show_default=True, help="Who the token is for.")
@click.option("--ttl", default=3600 * 8, show_default=True, help="Seconds until it expires.")
def token(roles: tuple[str, ...], subject: str, ttl: int) -> None:
    """Print a development JWT (signed with HAENGBOK_JWT_SECRET)."""
    from api.auth import Role, mint_token

    known = [r.value for r in Role]
    unknown = [r for r in roles if r not in known]
    if unknown:
        raise click.BadParameter(
            f"unknown role {unknown[0]!r}; choose from {', '.join(known)}", param_hint="'--role'"
        )
    try:
        click.echo(mint_token(Settings.from_env(), subject, list(roles), ttl_seconds=ttl))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@main.command()
def status() -> None:
    """Queues, relay lag, parked messages, projections, sagas and circuit breakers, from the
    database. Exits 0 when all is well, 2 when something needs attention (parked messages or
    sagas, a circuit not closed), 1 when the database cannot be read."""
    import psycopg

    from haengbok.status import render_status

    url, _server = _database(Settings.from_env())
    try:
        with psycopg.connect(url, connect_timeout=5, application_name="haengbok-status") as conn:
            _snap, attention = render_status(conn)
    except psycopg.Error as exc:
        # Unreachable, or not migrated: an operator wants the reason in a line, not a traceback.
        raise click.ClickException(f"cannot read the status from the database: {exc}") from exc
    if attention:
        click.echo(f"needs attention: {'; '.join(attention)}", err=True)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
