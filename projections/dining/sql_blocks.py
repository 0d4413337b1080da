"""Running the Dining read models' named SQL blocks against a table chosen at run time.

A projector writes to its live table or, during a rebuild, to a fresh twin, so its SQL names
the table as ``{table}`` and psycopg composes the identifier in; nothing is string-formatted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from outbox.envelope import Envelope
from sql import query

# (named block, parameters) for one event, in the order the events came.
Statement = tuple[str, Mapping[str, Any]]


def table_sql(block: str, table: sql.Identifier) -> sql.Composed:
    """The named block with ``{table}`` bound to ``table``."""
    return sql.SQL(query(block)).format(table=table)


def create_from_block(conn: psycopg.Connection[Any], block: str, table: sql.Identifier) -> None:
    """Run a table-creating block (several statements, no parameters) for ``table``."""
    conn.execute(table_sql(block, table))


def execute_in_order(
    conn: psycopg.Connection[Any], table: sql.Identifier, statements: Sequence[Statement]
) -> None:
    """Run one upsert per event, in order, pipelined into few round trips.

    In order, and one statement per event, because an ``INSERT ... ON CONFLICT`` may not
    touch one row twice and a batch often holds several events of one reservation.
    """
    composed: dict[str, sql.Composed] = {}
    with conn.pipeline(), conn.cursor() as cur:
        for block, params in statements:
            if block not in composed:
                composed[block] = table_sql(block, table)
            cur.execute(composed[block], params)


def envelope_params(envelope: Envelope) -> dict[str, Any]:
    """Where and when an event happened: the columns every upsert records."""
    return {
        "version": envelope.version,
        "occurred_at": envelope.occurred_at,
        "global_position": envelope.global_position,
    }
