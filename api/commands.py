"""The command endpoint helper every product-line controller uses.

One call does the whole HTTP side of a command: one transaction on a pooled connection, the
``Idempotency-Key`` claim and stored response, the handler (aggregate rows + events), commit,
a wake-up for the relay, ``202 Accepted`` with ``Location`` and the log position, and the
optional ``Prefer: wait=N`` read of the settled state. Controllers stay thin::

    @post(
        "/reservations",
        operation_id="createReservation",
        status_code=202,
        responses=command_responses(settled=ReservationView),
        response_headers=COMMAND_RESPONSE_HEADERS,
    )
    async def create(
        self, data: JSONBody[ReservationCreate], command_runner: NamedDependency[CommandRunner]
    ) -> Response[ReservationAccepted]:
        async def handle(conn, ctx):
            ...  # write the aggregate, append events with ctx
            return CommandResult(resource={...}, location=f"/dining/reservations/{id}", appended=a)

        return await command_runner.run(handle, settled=reservation_settled)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import psycopg
import structlog
from litestar import Request, Response
from litestar.exceptions import NotAuthorizedException
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api.auth import Principal, current_principal
from api.idempotency import (
    StoredResponse,
    claim,
    idempotency_key,
    idempotency_scope,
    remember,
    request_fingerprint,
)
from api.middleware import request_ids
from haengbok.settings import Settings
from outbox.envelope import Appended, MessageContext
from sql import query

LOG_POSITION_HEADER = "X-Log-Position"
LOG_POSITION_FIELD = "log_position"
ANONYMOUS = "anonymous"
_WAIT = re.compile(r"(?:^|[,;])\s*wait\s*=\s*\"?(?P<n>\d+(?:\.\d+)?)\"?\s*(?=$|[,;])", re.I)
_FIRST_POLL_SECONDS = 0.01
_MAX_POLL_SECONDS = 0.25

log = structlog.get_logger("api.commands")

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command handler returns: the accepted resource, where it lives, its events."""

    resource: Mapping[str, Any]
    location: str
    appended: Sequence[Appended] = ()

    @property
    def log_position(self) -> int | None:
        """Position of the last appended event: what read-your-writes waits for."""
        return max((a.position for a in self.appended), default=None)


CommandHandler = Callable[[psycopg.AsyncConnection[Any], MessageContext], Awaitable[CommandResult]]
# Reads the settled resource (from a read model or the aggregate), or None while in flight.
# It receives the 202 resource, so it also works when the response is an idempotent replay.
SettledQuery = Callable[[psycopg.AsyncConnection[Any], Resource], Awaitable[Resource | None]]


def prefer_wait(prefer: str | None, cap_seconds: float) -> float | None:
    """Seconds from ``Prefer: wait=N`` (RFC 7240), capped; None when absent or zero."""
    if not prefer:
        return None
    match = _WAIT.search(prefer)
    if match is None:
        return None
    seconds = min(float(match.group("n")), cap_seconds)
    return seconds if seconds > 0 else None


def _body(resource: Mapping[str, Any], log_position: int | None) -> bytes:
    if LOG_POSITION_FIELD in resource:
        raise ValueError(f"a command resource must not define {LOG_POSITION_FIELD!r}")
    return msgspec.json.encode({**resource, LOG_POSITION_FIELD: log_position})


def accepted_response(result: CommandResult) -> StoredResponse:
    """The 202 for a handled command, in the form stored for idempotent replays."""
    headers = {"Location": result.location}
    if result.log_position is not None:
        headers[LOG_POSITION_HEADER] = str(result.log_position)
    return StoredResponse(202, _body(result.resource, result.log_position), headers)


def message_context(request: Request[Any, Any, Any]) -> MessageContext:
    """Correlation of the conversation, this request as the cause, the caller as the actor."""
    ids = request_ids(request.scope)
    principal = current_principal(request)
    return MessageContext(
        correlation_id=ids.correlation_id,
        causation_id=ids.request_id,
        actor=principal.subject if principal else None,
    )


class CommandRunner:
    """Runs command handlers for one request (a Litestar dependency named ``command_runner``)."""

    def __init__(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool[Any],
        settings: Settings,
        wake_relay: Callable[[], None] | None = None,
    ) -> None:
        self.request = request
        self.pool = pool
        self.settings = settings
        # The app's outbox.wakeup.AsyncRelayWakeup.poke; without it, a NOTIFY per command.
        self.wake_relay = wake_relay

    @property
    def principal(self) -> Principal:
        """The authenticated caller (401 on a route that let an anonymous request through)."""
        principal = current_principal(self.request)
        if principal is None:
            raise NotAuthorizedException(detail="a bearer token is required")
        return principal

    @property
    def context(self) -> MessageContext:
        """The ``MessageContext`` the handler appends its events with."""
        return message_context(self.request)

    async def run(
        self,
        handler: CommandHandler,
        *,
        settled: SettledQuery | None = None,
        writes_once: bool = False,
    ) -> Response[Any]:
        """Run ``handler`` once per idempotency key and answer 202 (or 200 when settled).

        The body is already encoded; the ``Any`` lets a controller annotate its return as
        ``Response[ReservationAccepted]`` so that OpenAPI documents the accepted shape.

        ``writes_once``: the handler only reads before its last statement, which makes every
        change it makes (e.g. ``outbox.log.append_after_write_async``), and nothing after that
        can fail. Without an ``Idempotency-Key`` it then runs with no transaction around it
        (the pool's connections are in autocommit): two round trips fewer, and under READ
        COMMITTED its reads see what they would have seen inside one. With a key it runs in
        the key's transaction, as every handler does.
        """
        key = idempotency_key(self.request.headers)
        wait = prefer_wait(self.request.headers.get("prefer"), self.settings.read_wait_max_seconds)
        ctx = self.context
        scope = idempotency_scope(
            ctx.actor or ANONYMOUS, self.request.method, self.request.url.path
        )
        # Read before borrowing a connection: a slow upload must not hold one.
        fingerprint = request_fingerprint(await self.request.body(), self.request.url.query or "")
        stored: StoredResponse | None = None
        async with self.pool.connection() as conn:
            if key is None and writes_once:
                replayed = False
                stored = accepted_response(await handler(conn, ctx))
            else:
                async with conn.transaction():
                    if key is not None:
                        stored = await claim(conn, scope, key, fingerprint)
                    replayed = stored is not None
                    if stored is None:
                        stored = accepted_response(await handler(conn, ctx))
                        if key is not None:
                            await remember(conn, scope, key, stored)
            if not replayed and self.wake_relay is None:
                await _wake_relay(conn)
        if not replayed and self.wake_relay is not None:
            self.wake_relay()
        if wait is not None and settled is not None:
            settled_response = await self._wait_until_settled(stored, settled, wait)
            if settled_response is not None:
                if replayed:
                    settled_response.headers["Idempotent-Replayed"] = "true"
                return settled_response
        headers = dict(stored.headers)
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(
            stored.body,
            status_code=stored.status_code,
            media_type="application/json",
            headers=headers,
        )

    async def _wait_until_settled(
        self, stored: StoredResponse, settled: SettledQuery, wait: float
    ) -> Response[bytes] | None:
        accepted: Resource = msgspec.json.decode(stored.body)
        position = accepted.pop(LOG_POSITION_FIELD, None)
        resource = await _poll(self.pool, settled, accepted, wait)
        if resource is None:
            return None
        headers = {**stored.headers, "Preference-Applied": f"wait={wait:g}"}
        return Response(
            _body(resource, position),
            status_code=200,
            media_type="application/json",
            headers=headers,
        )


async def _wake_relay(conn: psycopg.AsyncConnection[Any]) -> None:
    # After commit and in its own statement: NOTIFY inside the command transaction would take
    # the global notify lock at commit and serialise all commits. The relay also polls, so a
    # lost wake-up only delays delivery; it must not fail a command that already committed.
    try:
        await conn.execute(query("outbox.notify_relay"))
    except psycopg.Error as exc:
        log.warning("relay_wakeup_failed", error=repr(exc))


async def _poll(
    pool: AsyncConnectionPool[Any], settled: SettledQuery, accepted: Resource, wait: float
) -> Resource | None:
    """Call ``settled`` until it returns a resource or ``wait`` seconds pass (backing off).

    A connection is borrowed per attempt rather than held, so waiting clients do not starve
    the pool of connections for commands.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    delay = _FIRST_POLL_SECONDS
    while True:
        remaining = deadline - loop.time()
        try:
            async with pool.connection(timeout=max(remaining, 0.05)) as conn:
                found = await settled(conn, dict(accepted))
        except PoolTimeout:
            return None
        if found is not None:
            return found
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, _MAX_POLL_SECONDS)
