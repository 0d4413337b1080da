"""Replacing a live read-model table by its rebuilt twin, keeping what points at it by name.

Constraint and index names are derived from the table name PostgreSQL saw at creation
(``timeline_rebuild_1a2b3c4d_pkey``); after the swap they are renamed back to the live
table's (``timeline_pkey``) so the schema stays equal to the migrations' reference picture.
Grants to other roles (analysts, the API) are copied over. Views that depend on the live
table block the swap (DROP TABLE refuses), which rolls it back and leaves the live table as
it was.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from projections.projector import Table
from sql import query

_TABLE_PRIVILEGES = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN"}
)


def table_exists(conn: psycopg.Connection[Any], table: Table) -> bool:
    """Whether ``table`` exists (as seen by this transaction)."""
    return bool(_rows(conn, "projection.table_exists", table)[0][0])


def replace_table(conn: psycopg.Connection[Any], live: Table, replacement: Table) -> None:
    """Drop ``live`` and give ``replacement`` its name, names of parts and grants.

    Runs in the caller's transaction, which should already hold ACCESS EXCLUSIVE on ``live``.
    """
    grants = _rows(conn, "projection.table_grants", live) if table_exists(conn, live) else []
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(live.identifier))
    conn.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            replacement.identifier, sql.Identifier(live.name)
        )
    )
    _rename_parts(conn, live, old_prefix=replacement.name)
    for grantee, privilege, grantable in grants:
        _grant(conn, live, str(grantee), str(privilege), bool(grantable))


def _rename_parts(conn: psycopg.Connection[Any], table: Table, old_prefix: str) -> None:
    # Renaming a primary key or unique constraint renames its index too, so constraints go
    # first and only indexes backing no constraint are renamed on their own.
    for (name,) in _rows(conn, "projection.table_constraint_names", table):
        if new := _renamed(str(name), old_prefix, table.name):
            conn.execute(
                sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                    table.identifier, sql.Identifier(name), sql.Identifier(new)
                )
            )
    for (name,) in _rows(conn, "projection.table_plain_index_names", table):
        if new := _renamed(str(name), old_prefix, table.name):
            conn.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    sql.Identifier(table.schema, name), sql.Identifier(new)
                )
            )


def _renamed(name: str, old_prefix: str, new_prefix: str) -> str | None:
    return new_prefix + name[len(old_prefix) :] if name.startswith(old_prefix) else None


def _grant(
    conn: psycopg.Connection[Any], table: Table, grantee: str, privilege: str, grantable: bool
) -> None:
    if privilege not in _TABLE_PRIVILEGES:
        raise ValueError(f"unexpected table privilege {privilege!r} on {table}")
    role = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
    stmt = sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privilege), table.identifier, role)
    if grantable:
        stmt = sql.SQL("{} WITH GRANT OPTION").format(stmt)
    conn.execute(stmt)


def _rows(conn: psycopg.Connection[Any], name: str, table: Table) -> list[tuple[Any, ...]]:
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(query(name), {"schema": table.schema, "name": table.name}).fetchall()
