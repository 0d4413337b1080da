"""The embedded PostgreSQL used when no DATABASE_URL is given (package ``pgserver``).

pgserver ships PostgreSQL binaries inside the wheel, so a fresh machine needs nothing else.
It listens on a Unix socket inside the data folder only; no TCP port is taken.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Owns one pgserver instance; ``url(dbname)`` gives a libpq URL for a database in it."""

    def __init__(self, data_dir: Path, *, stop_on_exit: bool = True) -> None:
        from pgserver.postgres_server import get_server

        data_dir = data_dir.resolve()
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self._server: Any = get_server(data_dir, cleanup_mode="stop" if stop_on_exit else None)
        # pgserver falls back to a short runtime folder when the data path is too long for a
        # Unix socket name; remember where it put the socket so restarts use the same place.
        info = self._server.get_postmaster_info()
        self.socket_dir = str(info.socket_dir)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.socket_dir}"

    def ensure_database(self, dbname: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [dbname]
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        return self.url(dbname)

    def _configure(self, wanted: dict[str, str]) -> None:
        """Apply settings; restart only if one changed (other processes may share the server)."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            changed = False
            for name, value in wanted.items():
                row = conn.execute(
                    "SELECT setting FROM pg_settings WHERE name = %s", [name]
                ).fetchone()
                if row is None or row[0] != value:
                    conn.execute(
                        sql.SQL("ALTER SYSTEM SET {} = {}").format(
                            sql.Identifier(name), sql.Literal(value)
                        )
                    )
                    changed = True
        if changed:
            self.restart()

    def tune_for_tests(self) -> None:
        """No fsync: test data is thrown away, and fsync dominates small transactions.

        synchronous_commit stays on: with fsync off it costs only a write() per commit, and the
        crash tests need a commit that was acknowledged to survive an immediate shutdown.
        """
        self._configure(
            {
                "fsync": "off",
                "synchronous_commit": "on",
                "full_page_writes": "off",
                "max_connections": "300",
            }
        )

    def tune_for_run(self) -> None:
        self._configure({"max_connections": "200"})

    def _pg_ctl(self, *args: str) -> None:
        from pgserver import _commands

        pg_ctl: Any = _commands.pg_ctl  # type: ignore[attr-defined]  # made at import time
        pg_ctl(list(args), pgdata=self.data_dir, user=self._server.system_user)

    def restart(self) -> None:
        """Restart the server in place (fault tests use this while workers run)."""
        self._pg_ctl(
            "-w", "-m", "fast", "restart", "-o", f"-k {self.socket_dir} -c listen_addresses=''"
        )

    def stop(self, *, force: bool = False) -> None:
        """Stop the server unless another process still holds it (pgserver counts handles).

        ``force`` (used by `haengbok up`, which owns the server it started) also stops it when
        pgserver's handle count says otherwise: a handle left by a killed process would keep
        PostgreSQL running after Ctrl-C.
        """
        self._server.cleanup()
        if force and self.is_running():
            self._pg_ctl("-w", "-m", "fast", "stop")

    def is_running(self) -> bool:
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        return info is not None and info.is_running()

    def kill_and_start(self) -> None:
        """Immediate shutdown (like a crash) and start again; for fault tests."""
        try:
            self._pg_ctl("-w", "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            log.debug("embedded PostgreSQL was not running")
        self.start()

    def start(self) -> None:
        self._pg_ctl(
            "-w", "-l", str(self.data_dir / "log"), "start",
            "-o", f"-k {self.socket_dir} -c listen_addresses=''",
        )  # fmt: skip


def resolve_database_url(
    database_url: str | None, data_dir: Path, dbname: str
) -> tuple[str, EmbeddedPostgres | None]:
    """DATABASE_URL when given; otherwise start (or reuse) the embedded server."""
    if database_url:
        return database_url, None
    server = EmbeddedPostgres(data_dir)
    server.tune_for_run()
    return server.ensure_database(dbname), server
