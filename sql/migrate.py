"""Run alembic programmatically; revisions execute ``.sql`` files through the raw driver."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command, op
from alembic.config import Config

HERE = Path(__file__).parent
VERSIONS = HERE / "migrations" / "versions"


def _sqlalchemy_url(libpq_url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if libpq_url.startswith(prefix):
            return "postgresql+psycopg://" + libpq_url[len(prefix) :]
    if libpq_url.startswith("postgresql+psycopg://"):
        return libpq_url
    raise ValueError(f"not a PostgreSQL URL: {libpq_url!r}")


def alembic_config(database_url: str) -> Config:
    cfg = Config(str(HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    # ConfigParser treats % as interpolation; URLs may contain percent-encoding.
    cfg.set_main_option("sqlalchemy.url", _sqlalchemy_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def _driver_connection() -> Any:
    """The psycopg connection under alembic's SQLAlchemy connection (same transaction)."""
    return op.get_bind().connection.dbapi_connection


def run_sql(text: str) -> None:
    # No parameters: psycopg sends the text as is (no % interpolation), several statements allowed.
    _driver_connection().execute(text)


def run_sql_file(name: str) -> None:
    run_sql((VERSIONS / name).read_text(encoding="utf-8"))


def install_pgmq() -> None:
    """``CREATE EXTENSION pgmq`` where the server has it, else the SQL the pgmq package ships."""
    conn = _driver_connection()
    available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pgmq'").fetchone()
    if available:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgmq")
        return
    script = resources.files("pgmq").joinpath("sql/pgmq.sql").read_text(encoding="utf-8")
    conn.execute(script)


def uninstall_pgmq() -> None:
    conn = _driver_connection()
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pgmq'").fetchone():
        conn.execute("DROP EXTENSION pgmq CASCADE")
    conn.execute("DROP SCHEMA IF EXISTS pgmq CASCADE")
