"""How Dining's application code talks to PostgreSQL: named queries into dict rows, event
appends, and constraint violations as domain errors.

Who appends to a context's stream (``reservation-<id>``, ``deposit-<id>``...): that context's
own code, which holds the aggregate's row lock while it does (the saga's commands are on the
saga's stream, ``outbox.sagas.command_stream``). So appends to one stream take turns and never
collide on its next version. Message handlers therefore append without a savepoint; if a
collision happened anyway, the delivery would fail and be redelivered, which appends afresh.
HTTP commands keep a retry in a savepoint (``record``): a rating and a cancel are rare and the
customer should not see a 409 for a race that is not theirs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from domain.dining.errors import AlreadyRated, DiningError, NoSeatsLeft
from domain.messages import Message
from outbox.consumers import HandlerContext
from outbox.envelope import Appended, MessageContext, NewMessage
from outbox.log import ConcurrencyConflict, append_after_writes_async, append_async
from sql import query

Row = dict[str, Any]
APPEND_ATTEMPTS = 3
# Constraint name -> the domain error it means (the one place that knows constraint names).
_CONSTRAINT_ERRORS: dict[str, type[DiningError]] = {
    "slot_booking_capacity": NoSeatsLeft,
    "rating_pkey": AlreadyRated,
}


def new_message(message: Message) -> NewMessage:
    """The log message of a domain message (an event, or a command on its own stream)."""
    # outbox.sagas.to_new_message does the same for commands only; events go through here.
    return NewMessage(message.TYPE, message.stream(), message.payload(), kind=message.KIND)


def one(conn: psycopg.Connection[Any], name: str, **params: Any) -> Row | None:
    """First row of a named query, as a dict."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query(name), params).fetchone()


async def one_async(conn: psycopg.AsyncConnection[Any], name: str, **params: Any) -> Row | None:
    """``one`` for the API's async connections."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query(name), params)
        return await cur.fetchone()


async def all_async(conn: psycopg.AsyncConnection[Any], name: str, **params: Any) -> list[Row]:
    """Every row of a named query, as dicts."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query(name), params)
        return await cur.fetchall()


def emit(ctx: HandlerContext, *messages: Message) -> None:
    """Append what a message handler caused, in its transaction, with no savepoint (see the
    module docstring)."""
    ctx.emit(*(new_message(m) for m in messages))


async def record(
    conn: psycopg.AsyncConnection[Any], ctx: MessageContext, messages: Sequence[Message]
) -> list[Appended]:
    """Append what an HTTP command caused, in its transaction (see the module docstring)."""
    attempt = 1
    while True:
        try:
            async with conn.transaction():
                return await append_async(conn, [new_message(m) for m in messages], ctx)
        except ConcurrencyConflict:
            if attempt == APPEND_ATTEMPTS:
                raise
            attempt += 1


async def record_new_streams_after(
    conn: psycopg.AsyncConnection[Any],
    writes: Sequence[tuple[str, Mapping[str, Any]]],
    items: Sequence[tuple[NewMessage, MessageContext]],
) -> list[Appended]:
    """Append messages that start streams no other transaction can know yet (named after an
    id this transaction just made: a new aggregate's, and the saga its event starts), so no
    concurrent append can race them: no retry here. Each message has its own context; they go
    in one statement with ``writes`` (named queries' SQL and their parameters;
    ``outbox.log.append_after_writes_async``), atomic with no transaction around. A conflict
    would still raise, and so does a write's ``StaleRead``. Inside a transaction (an
    idempotent request's) they run in a savepoint, so that such a failure leaves the
    transaction usable for the caller's next try."""
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        return await append_after_writes_async(conn, writes, items)
    async with conn.transaction():
        return await append_after_writes_async(conn, writes, items)


@contextmanager
def constraint_errors(messages: Mapping[str, str]) -> Iterator[None]:
    """Turn a violated constraint named in ``messages`` into its domain error with that text.

    Wrap a savepoint (``conn.transaction()``) in it, so the enclosing transaction survives.
    """
    try:
        yield
    except psycopg.errors.IntegrityError as exc:
        name = exc.diag.constraint_name
        if name is None or name not in messages:
            raise
        raise _CONSTRAINT_ERRORS[name](messages[name]) from exc
