"""Shared set-up for benchmarks: a fresh migrated database and a place for results."""

from __future__ import annotations

import json
import os
import platform
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql

from haengbok.dburl import with_database
from haengbok.embedded import EmbeddedPostgres
from sql import migrate

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench-results"


def fresh_database(prefix: str) -> tuple[str, EmbeddedPostgres | None]:
    """A new, migrated database on DATABASE_URL's server or on the embedded one."""
    server = None
    if os.environ.get("DATABASE_URL"):
        admin = with_database(os.environ["DATABASE_URL"], "postgres")
    else:
        server = EmbeddedPostgres(ROOT / ".pgdata-bench")
        server.tune_for_run()
        admin = server.url("postgres")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    url = with_database(admin, name)
    migrate.upgrade(url)
    return url, server


def drop_database(url: str) -> None:
    admin = with_database(url, "postgres")
    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
        )


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, **result}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return path
