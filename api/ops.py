"""The ops API: what an operator looks at and the few things they may do (role ``ops``).

Reads run on the app's async pool, the paged list of dead letters (``ops.dead_letters``)
included. Re-queueing and discarding them are ``outbox.parking``'s, which is synchronous: those
routes run it in a worker thread on a short-lived connection of their own, so there is exactly
one implementation of what changes parked messages. These routes are rare and operator-driven,
so a connection per call costs nothing that matters.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import anyio.to_thread
import msgspec
import psycopg
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from psycopg.rows import dict_row, tuple_row

from api import cursors
from api.auth import Role, requires_roles
from api.circuit_breakers import CircuitBreakerView, read_circuit_breakers
from api.openapi import problem_responses
from api.ops_queries import read_ops_snapshot
from api.ops_schemas import (
    DeadLetter,
    Overview,
    ProjectionView,
    QueueView,
    Requeued,
    SagaDetail,
    SagaStatus,
    SagaSummary,
)
from api.problems import problem
from api.schemas import MAX_BIGINT, NO_NUL
from haengbok.settings import Settings
from outbox import wire
from outbox.parking import ParkedMessage, discard_parked, requeue_parked
from outbox.sagas import command_stream
from sql import query

T = TypeVar("T")
AsyncConn = NamedDependency[psycopg.AsyncConnection[Any]]
#: A saga's page lists at most this many of its log entries.
SAGA_MESSAGES_LIMIT = 500
#: Page sizes of ``GET /ops/dead-letters``.
DEAD_LETTERS_DEFAULT_LIMIT = 100
DEAD_LETTERS_MAX_LIMIT = 1000
#: The largest parked id (``bigint``): a larger cursor is refused up front rather than failing
#: in the database.
_MAX_PARKED_ID = MAX_BIGINT
NEXT_CURSOR_HEADER = "X-Next-Cursor"
DEAD_LETTER_PAGE_HEADERS = [
    ResponseHeader(
        name="Link",
        documentation_only=True,
        description='`<...>; rel="next"`: the next page (same filter and limit). Absent on the '
        "last page",
    ),
    ResponseHeader(
        name=NEXT_CURSOR_HEADER,
        documentation_only=True,
        description="The id to pass as `after` for the next page. Absent on the last page",
    ),
]
SAGA_PAGE_HEADERS = [
    DEAD_LETTER_PAGE_HEADERS[0],
    ResponseHeader(
        name=NEXT_CURSOR_HEADER,
        documentation_only=True,
        description="The cursor to pass as `after` for the next page. Absent on the last page",
    ),
]
_CONNECT_TIMEOUT_SECONDS = 5


def _saga_cursor(after: str | None) -> tuple[datetime | None, uuid.UUID | None]:
    # "<updated_at>~<saga id>": where the page before ended (api.cursors).
    return (None, None) if after is None else cursors.decode(after, page="/ops/sagas")


async def _rows(
    conn: psycopg.AsyncConnection[Any], name: str, **params: Any
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query(name), params or None)
        return await cur.fetchall()


async def _in_thread(settings: Settings, work: Callable[[psycopg.Connection[Any]], T]) -> T:
    """Run ``work`` in one transaction on a fresh sync connection, off the event loop."""
    url = str(settings.database_url)

    def run() -> T:
        with (
            psycopg.connect(
                url, application_name="haengbok-ops", connect_timeout=_CONNECT_TIMEOUT_SECONDS
            ) as conn,
            conn.transaction(),
        ):
            return work(conn)

    return await anyio.to_thread.run_sync(run)


def _dead_letter(parked: ParkedMessage) -> DeadLetter:
    message = parked.message if isinstance(parked.message, dict) else {}
    args = message.get("args")
    first = args[0] if isinstance(args, list) and args else None
    message_type = first.get("type") if isinstance(first, dict) else None
    actor = message.get("actor_name")
    correlation = (parked.headers or {}).get(wire.CORRELATION_HEADER)
    return DeadLetter(
        id=parked.id,
        queue_name=parked.queue_name,
        group_key=parked.group_key,
        msg_id=parked.msg_id,
        read_ct=parked.read_ct,
        error=parked.error,
        enqueued_at=parked.enqueued_at,
        parked_at=parked.parked_at,
        actor=actor if isinstance(actor, str) else None,
        message_type=message_type if isinstance(message_type, str) else None,
        correlation_id=None if correlation is None else str(correlation),
    )


def _next_page_headers(
    request: Request[Any, Any, Any], queue: str | None, limit: int, after: int
) -> dict[str, str]:
    """The headers that point at the page after ``after``. The link is a path and query only:
    behind a proxy the host the app sees need not be the one the client used."""
    params: dict[str, str | int] = {} if queue is None else {"queue": queue}
    params.update(limit=limit, after=after)
    target = f"{request.url.path}?{urlencode(params)}"
    return {"Link": f'<{target}>; rel="next"', NEXT_CURSOR_HEADER: str(after)}


def _requeue(parked_id: int) -> Callable[[psycopg.Connection[Any]], Requeued | None]:
    def work(conn: psycopg.Connection[Any]) -> Requeued | None:
        # Where it goes, read in the same transaction as the re-queue itself.
        with conn.cursor(row_factory=tuple_row) as cur:
            target = cur.execute(query("broker.parked_target"), {"id": parked_id}).fetchone()
        if target is None:
            return None
        msg_ids = requeue_parked(conn, parked_id)
        if not msg_ids:  # re-queued or discarded by someone else since the read above
            return None
        return Requeued(id=parked_id, queue_name=target[0], group_key=target[1], msg_ids=msg_ids)

    return work


def _dead_letter_not_found(parked_id: int) -> Exception:
    return problem(404, "dead-letter-not-found", detail=f"No parked message with id {parked_id}.")


class OpsController(Controller):
    """Queues, sagas, projections, circuit breakers and dead letters, for operators only."""

    path = "/ops"
    tags = ["ops"]
    guards = [requires_roles(Role.OPS)]

    @get(
        "/overview",
        operation_id="getOpsOverview",
        summary="Platform snapshot",
        responses=problem_responses(401, 403, 503),
    )
    async def overview(self, db_conn: AsyncConn) -> Overview:
        """Queues, relay lag, log head, projections, saga counts and parked counts at once
        (the same numbers ``/metrics`` exports)."""
        snapshot = await read_ops_snapshot(db_conn)
        return msgspec.convert(snapshot, Overview, from_attributes=True)

    @get(
        "/queues",
        operation_id="listOpsQueues",
        summary="pgmq queues",
        responses=problem_responses(401, 403, 503),
    )
    async def queues(self, db_conn: AsyncConn) -> list[QueueView]:
        """Each queue's depth, visible messages, oldest message age and parked messages."""
        rows = await _rows(db_conn, "ops.queues")
        return [
            QueueView(
                queue_name=r["queue_name"],
                depth=int(r["depth"]),
                visible=int(r["visible"]),
                oldest_age_seconds=r["oldest_age_seconds"],
                parked=int(r["parked"]),
                exists=r["queue_exists"],
            )
            for r in rows
        ]

    @get(
        "/circuit-breakers",
        operation_id="listOpsCircuitBreakers",
        summary="Circuit breakers",
        responses=problem_responses(401, 403, 503),
    )
    async def circuit_breakers(self, db_conn: AsyncConn) -> list[CircuitBreakerView]:
        """Each breaker of calls to the outside world (the payment provider): its state, the
        failures that opened it, and how long callers still wait. While one is open, commands
        that need it are refused with 503."""
        return await read_circuit_breakers(db_conn)

    @get(
        "/sagas",
        operation_id="listOpsSagas",
        summary="Saga instances",
        responses=problem_responses(400, 401, 403, 503),
        response_headers=SAGA_PAGE_HEADERS,
    )
    async def sagas(
        self,
        request: Request[Any, Any, Any],
        db_conn: AsyncConn,
        status: Annotated[SagaStatus | None, QueryParameter(description="Only this status")] = None,
        saga_type: Annotated[
            str | None, QueryParameter(description="Only this saga type", pattern=NO_NUL)
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="At most this many")] = 50,
        after: Annotated[
            str | None,
            QueryParameter(
                pattern=cursors.PATTERN,
                description="Cursor: the page after the one whose "
                f"`{NEXT_CURSOR_HEADER}` this is. Start without it",
            ),
        ] = None,
    ) -> Response[list[SagaSummary]]:
        """Saga instances, most recently changed first, by status and/or type, a page at a
        time (``Link: rel="next"``)."""
        after_at, after_id = _saga_cursor(after)
        params = {"status": status, "saga_type": saga_type, "limit": limit + 1,
                  "after_at": after_at, "after_id": after_id}  # fmt: skip
        rows = await _rows(db_conn, "saga.list", **params)
        sagas = [msgspec.convert(r, SagaSummary, strict=False) for r in rows[:limit]]
        headers: dict[str, str] = {}
        if len(rows) > limit:
            last = rows[limit - 1]
            cursor = cursors.encode(last["updated_at"], last["saga_id"])
            query_params: dict[str, str | int] = {"limit": limit, "after": cursor}
            if status is not None:
                query_params["status"] = str(status)
            if saga_type is not None:
                query_params["saga_type"] = saga_type
            link = f"{request.url.path}?{urlencode(query_params)}"
            headers = {"Link": f'<{link}>; rel="next"', NEXT_CURSOR_HEADER: cursor}
        return Response(sagas, headers=headers)

    @get(
        "/sagas/{saga_id:uuid}",
        operation_id="getOpsSaga",
        summary="One saga and its messages",
        responses=problem_responses(401, 403, 404, 503),
    )
    async def saga(self, db_conn: AsyncConn, saga_id: FromPath[uuid.UUID]) -> SagaDetail:
        """A saga's state and the log entries of its flow (every conversation it took part in:
        the request that started it, and any later one such as a cancel), in log order."""
        async with db_conn.transaction():  # one snapshot: the saga and its messages agree
            found = await _rows(db_conn, "ops.saga", saga_id=saga_id)
            if not found:
                raise problem(404, "saga-not-found", detail=f"No saga with id {saga_id}.")
            messages = await _rows(
                db_conn,
                "ops.saga_messages",
                correlation_id=found[0]["correlation_id"],
                saga_stream=command_stream(found[0]["saga_type"], saga_id),
                limit=SAGA_MESSAGES_LIMIT,
            )
        return msgspec.convert({**found[0], "messages": messages}, SagaDetail, strict=False)

    @get(
        "/projections",
        operation_id="listOpsProjections",
        summary="Projection lag",
        responses=problem_responses(401, 403, 503),
    )
    async def projections(self, db_conn: AsyncConn) -> list[ProjectionView]:
        """Each projection's checkpoint, the log head, and how far behind it is."""
        rows = await _rows(db_conn, "projection.lag")
        return [msgspec.convert(r, ProjectionView, strict=False) for r in rows]

    @get(
        "/dead-letters",
        operation_id="listOpsDeadLetters",
        summary="Parked messages",
        responses=problem_responses(400, 401, 403, 503),
        response_headers=DEAD_LETTER_PAGE_HEADERS,
    )
    async def dead_letters(
        self,
        request: Request[Any, Any, Any],
        db_conn: AsyncConn,
        queue: Annotated[
            str | None, QueryParameter(description="Only this queue", pattern=NO_NUL)
        ] = None,
        limit: Annotated[
            int,
            QueryParameter(
                ge=1,
                le=DEAD_LETTERS_MAX_LIMIT,
                description="At most this many parked messages on the page",
            ),
        ] = DEAD_LETTERS_DEFAULT_LIMIT,
        after: Annotated[
            int,
            QueryParameter(
                ge=0,
                le=_MAX_PARKED_ID,
                description="Cursor: only parked messages with a larger id. Start without it, "
                f"then pass the `{NEXT_CURSOR_HEADER}` of the page before",
            ),
        ] = 0,
    ) -> Response[list[DeadLetter]]:
        """Parked messages (of one queue, or all) with their errors, a page at a time in id
        (parking) order.

        Keyset paging on the primary key: a page costs the same however deep it is, and
        messages re-queued, discarded or parked between two pages shift nothing, where an
        offset would skip or repeat some. The body stays the bare list it has always been, so
        existing clients keep working; the next page is announced in headers instead, a
        ``Link`` with ``rel="next"`` for clients that follow links and ``X-Next-Cursor`` for
        scripts. Both are sent only when another row exists (one row more than the page is
        read to know), so a page without them is the last.
        """
        rows = await _rows(db_conn, "ops.dead_letters", queue=queue, after=after, limit=limit + 1)
        letters = [_dead_letter(ParkedMessage(**r)) for r in rows[:limit]]
        more = len(rows) > limit
        headers = _next_page_headers(request, queue, limit, letters[-1].id) if more else {}
        return Response(letters, headers=headers)

    @post(
        "/dead-letters/{parked_id:int}/retry",
        operation_id="retryOpsDeadLetter",
        summary="Re-queue a parked message",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409, 503),
    )
    async def retry_dead_letter(
        self, settings: NamedDependency[Settings], parked_id: FromPath[int]
    ) -> Requeued:
        """Send the message back to its queue with its read count reset, together with the
        messages of its FIFO group parked behind it (in their order)."""
        if not 1 <= parked_id <= _MAX_PARKED_ID:
            raise _dead_letter_not_found(parked_id)  # beyond the ids' bigint: none such
        try:
            requeued = await _in_thread(settings, _requeue(parked_id))
        except psycopg.errors.UndefinedTable as exc:
            # pgmq has no table for the queue: it was dropped after the message was parked.
            # The transaction rolled back, so the message stays parked.
            raise problem(
                409,
                "queue-missing",
                title="Queue missing",
                detail="The message's queue no longer exists; create it again, or discard the "
                "message.",
            ) from exc
        if requeued is None:
            raise _dead_letter_not_found(parked_id)
        return requeued

    @delete(
        "/dead-letters/{parked_id:int}",
        operation_id="discardOpsDeadLetter",
        summary="Discard a parked message",
        responses=problem_responses(401, 403, 404, 503),
    )
    async def discard_dead_letter(
        self, settings: NamedDependency[Settings], parked_id: FromPath[int]
    ) -> None:
        """Delete the parked message for good; messages parked behind it stay parked."""
        if not 1 <= parked_id <= _MAX_PARKED_ID:
            raise _dead_letter_not_found(parked_id)
        if not await _in_thread(settings, lambda conn: discard_parked(conn, parked_id)):
            raise _dead_letter_not_found(parked_id)
