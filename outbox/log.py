"""Appending to the event log inside the caller's transaction (sync and async connections)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from outbox.envelope import Appended, MessageContext, NewMessage
from sql import query

STREAM_VERSION_CONSTRAINT = "event_stream_version_key"
STALE_READ_SQLSTATE = "YH001"  # raised by outbox.expect (migration 0011)


class ConcurrencyConflict(Exception):
    """Another transaction appended to the same stream first; retry the command.

    In a consumer this is a race, not a fault of the message: it is retried without using up
    an attempt (``transient``, see ``outbox.errors``). The API answers it with 409.
    """

    transient = True


class StaleRead(ConcurrencyConflict):
    """A one-statement write found that what it was decided on has changed since it was read
    (its ``WHERE outbox.expect(...)`` did not hold): nothing was written; read afresh and
    decide again. A kind of ``ConcurrencyConflict``, so it is retried and answered the same."""


def _row(m: NewMessage, c: MessageContext) -> dict[str, Any]:
    return {
        "event_id": str(m.event_id), "kind": m.kind, "type": m.type, "stream": m.stream,
        "payload": dict(m.payload), "correlation_id": str(c.correlation_id),
        "causation_id": None if c.causation_id is None else str(c.causation_id),
        "actor": c.actor,
    }  # fmt: skip


def _statement(messages: Sequence[NewMessage], ctx: MessageContext) -> tuple[str, dict[str, Any]]:
    """The append statement and its parameters, every message with the same context."""
    return _statement_each([(m, ctx) for m in messages])


def _statement_each(
    items: Sequence[tuple[NewMessage, MessageContext]],
) -> tuple[str, dict[str, Any]]:
    """The append statement and its parameters. One message (most appends) takes a plain
    INSERT with scalar parameters; several go in one JSON array (``append_each``'s statement,
    each row with its own context)."""
    if len(items) == 1:
        ((m, ctx),) = items
        return query("outbox.append_one"), {
            "event_id": m.event_id,
            "kind": m.kind,
            "type": m.type,
            "stream": m.stream,
            "payload": Jsonb(dict(m.payload)),
            "correlation_id": ctx.correlation_id,
            "causation_id": ctx.causation_id,
            "actor": ctx.actor,
        }
    return query("outbox.append_each"), {"rows": Jsonb([_row(m, c) for m, c in items])}


def _appended(rows: list[tuple[Any, ...]]) -> list[Appended]:
    return [Appended(position=r[0], event_id=r[1], stream=r[2], version=r[3]) for r in rows]


def _is_stream_conflict(exc: psycopg.errors.UniqueViolation) -> bool:
    return exc.diag.constraint_name == STREAM_VERSION_CONSTRAINT


def append(
    conn: psycopg.Connection[Any], messages: Sequence[NewMessage], ctx: MessageContext
) -> list[Appended]:
    """Append messages in the connection's current transaction; they commit with it."""
    if not messages:
        return []
    try:
        rows = conn.execute(*_statement(messages, ctx)).fetchall()
    except psycopg.errors.UniqueViolation as exc:
        if _is_stream_conflict(exc):
            raise ConcurrencyConflict(str(exc.diag.message_detail)) from exc
        raise
    return _appended(rows)


def append_each(
    conn: psycopg.Connection[Any], items: Sequence[tuple[NewMessage, MessageContext]]
) -> list[Appended]:
    """Append messages that each have their own context (several units of work sharing one
    transaction) in one statement, in the order given."""
    if not items:
        return []
    rows = [_row(m, c) for m, c in items]
    try:
        appended = conn.execute(query("outbox.append_each"), {"rows": Jsonb(rows)}).fetchall()
    except psycopg.errors.UniqueViolation as exc:
        if _is_stream_conflict(exc):
            raise ConcurrencyConflict(str(exc.diag.message_detail)) from exc
        raise
    return _appended(appended)


async def append_async(
    conn: psycopg.AsyncConnection[Any], messages: Sequence[NewMessage], ctx: MessageContext
) -> list[Appended]:
    """``append`` for the API's async connections."""
    if not messages:
        return []
    return await _run_append_async(conn, *_statement(messages, ctx))


async def _run_append_async(
    conn: psycopg.AsyncConnection[Any], statement: str, params: Mapping[str, Any]
) -> list[Appended]:
    try:
        cur = await conn.execute(statement, params)
        rows = await cur.fetchall()
    except psycopg.errors.UniqueViolation as exc:
        if _is_stream_conflict(exc):
            raise ConcurrencyConflict(str(exc.diag.message_detail)) from exc
        raise
    except psycopg.Error as exc:
        if exc.sqlstate == STALE_READ_SQLSTATE:
            raise StaleRead(str(exc.diag.message_primary)) from exc
        raise
    return _appended(rows)


@cache
def _after_writes(write_sqls: tuple[str, ...], append_sql: str) -> str:
    """``append_sql`` with each of ``write_sqls`` before it as a data-modifying CTE (which runs
    whether or not anything refers to it): one statement, so all commit or none, even with no
    transaction around it."""
    lines = append_sql.strip().splitlines()
    while lines and lines[0].lstrip().startswith("--"):
        lines.pop(0)
    body = "\n".join(lines)
    head = "WITH " + ",\n".join(
        f"_write_{i} AS (\n{sql.strip()}\n)" for i, sql in enumerate(write_sqls)
    )
    if body[:5].upper() == "WITH ":
        return f"{head}, {body[5:]}"
    return f"{head}\n{body}"


async def append_after_write_async(
    conn: psycopg.AsyncConnection[Any],
    write: tuple[str, Mapping[str, Any]],
    messages: Sequence[NewMessage],
    ctx: MessageContext,
) -> list[Appended]:
    """``append_async`` and a state change in ONE statement: ``write`` is an INSERT, UPDATE
    or DELETE (its SQL, without RETURNING, and its named parameters, none of them named like
    the append's). A command whose only change is this can run outside a transaction and
    still leave both or neither, two round trips (BEGIN, COMMIT) cheaper. A write that
    depends on an earlier read says so with ``WHERE outbox.expect(...)``: when that read is
    out of date, nothing is written or appended and ``StaleRead`` is raised."""
    return await append_after_writes_async(conn, [write], [(m, ctx) for m in messages])


async def append_after_writes_async(
    conn: psycopg.AsyncConnection[Any],
    writes: Sequence[tuple[str, Mapping[str, Any]]],
    items: Sequence[tuple[NewMessage, MessageContext]],
) -> list[Appended]:
    """``append_after_write_async`` with several writes, and messages that each have their
    own context (a saga started with the command: ``outbox.sagas.SagaRunner.start_now``). No
    two writes, nor a write and the append, may share a parameter name."""
    if not items:
        raise ValueError("append_after_write_async needs at least one message to append")
    append_sql, params = _statement_each(items)
    merged: dict[str, Any] = dict(params)
    for _, write_params in writes:
        clash = write_params.keys() & merged.keys()
        if clash:
            raise ValueError(f"the write's parameters {sorted(clash)} clash with another's")
        merged.update(write_params)
    sql = _after_writes(tuple(sql for sql, _ in writes), append_sql)
    return await _run_append_async(conn, sql, merged)
