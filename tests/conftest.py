"""Real PostgreSQL for every test that touches SQL.

One server per session: the embedded one (pgserver, data in .pgdata-test) unless DATABASE_URL
names another. Migrations run once into a template database; each test gets a fresh copy.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql as pgsql

from haengbok.dburl import with_database
from haengbok.embedded import EmbeddedPostgres
from sql import migrate

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[EmbeddedPostgres | None]:
    """The embedded server, or None when DATABASE_URL points elsewhere."""
    if os.environ.get("DATABASE_URL"):
        yield None
        return
    server = EmbeddedPostgres(Path(os.environ.get("HAENGBOK_TEST_DATA_DIR", ROOT / ".pgdata-test")))
    server.tune_for_tests()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin_url(embedded_server: EmbeddedPostgres | None) -> str:
    if embedded_server is None:
        return with_database(os.environ["DATABASE_URL"], "postgres")
    return embedded_server.url("postgres")


def _drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
        )


@pytest.fixture(scope="session")
def template_database(admin_url: str) -> Iterator[str]:
    name = f"haengbok_tpl_{os.getpid()}"
    _drop(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    migrate.upgrade(with_database(admin_url, name))
    yield name
    _drop(admin_url, name)


def create_database(admin_url: str, template: str | None) -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        stmt = pgsql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
            pgsql.Identifier(name), pgsql.Identifier(template or "template0")
        )
        conn.execute(stmt)
    return name


@pytest.fixture
def database_url(admin_url: str, template_database: str) -> Iterator[str]:
    """A fresh, fully migrated database for this test only."""
    name = create_database(admin_url, template_database)
    yield with_database(admin_url, name)
    _drop(admin_url, name)


@pytest.fixture
def empty_database_url(admin_url: str) -> Iterator[str]:
    """A fresh database with no migrations applied (migration tests)."""
    name = create_database(admin_url, None)
    yield with_database(admin_url, name)
    _drop(admin_url, name)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url) as connection:
        yield connection
