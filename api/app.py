"""The Litestar app factory: the API's composition root.

``create_app`` wires the platform parts (auth, correlation, problem details, health, metrics,
OpenAPI, the command helper's dependencies) around the controllers it is given; it knows
nothing about Dining or Cinema. Nothing connects at import time: the lifespan opens the
connection pool and closes it on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

import psycopg
from litestar import Controller, Litestar, Request, Router
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.params import HeaderParameter
from litestar.routes import HTTPRoute
from psycopg_pool import AsyncConnectionPool

from api.auth import BearerTokenMiddleware, Principal, VerifiedTokens, current_principal
from api.commands import CommandRunner, message_context
from api.health import HealthController
from api.idempotency import IDEMPOTENCY_HEADER, MAX_KEY_LENGTH
from api.metrics import HttpMetrics, HttpMetricsMiddleware, MetricsController
from api.middleware import CorrelationMiddleware, echo_request_ids
from api.openapi import OPENAPI_PATH, openapi_config
from api.problems import ProblemRegistry, default_problems
from api.requests import StrictJsonRequest
from haengbok.settings import Settings
from outbox import wire
from outbox.envelope import MessageContext
from outbox.pooling import AsyncIdleCheck
from outbox.wakeup import AsyncRelayWakeup

DEFAULT_DB_PROBE_TIMEOUT_SECONDS = 1.0

Lifespan = Callable[[Litestar], AbstractAsyncContextManager[None]]
RouteLayer = type[Controller] | Router


def create_app(
    settings: Settings,
    *,
    controllers: Sequence[RouteLayer] = (),
    extra_dependencies: Mapping[str, Provide] | None = None,
    problems: ProblemRegistry | None = None,
    lifespan: Sequence[Lifespan] = (),
    db_probe_timeout_seconds: float = DEFAULT_DB_PROBE_TIMEOUT_SECONDS,
) -> Litestar:
    """Build the API around ``controllers`` (the product lines pass theirs in).

    ``settings.database_url`` must be set (the caller resolves the embedded server first).
    ``problems`` extends the exception -> problem mapping (start from ``default_problems()``);
    ``lifespan`` adds context managers that run inside the pool's lifespan (e.g. an HTTP client
    for the payment provider). ``db_probe_timeout_seconds`` bounds how long readiness and
    ``/metrics`` wait for a database connection. Every route must declare an ``operation_id``.
    """
    if not settings.database_url:
        raise ValueError("settings.database_url must be set before building the app")
    wire.use_fast_json()
    http_metrics = HttpMetrics()
    app = Litestar(
        route_handlers=[HealthController, MetricsController, *controllers],
        lifespan=[_pool_lifespan(settings), *lifespan],
        dependencies={
            "settings": Provide(_provide_settings),
            "db_pool": Provide(_provide_pool),
            "db_conn": Provide(_provide_connection),
            "principal": Provide(_provide_principal),
            "message_context": Provide(_provide_message_context),
            "command_runner": Provide(_provide_command_runner),
            **(extra_dependencies or {}),
        },
        # First is outermost: ids exist before anything logs, metrics see auth failures.
        middleware=[
            CorrelationMiddleware(),
            HttpMetricsMiddleware(http_metrics),
            DefineMiddleware(
                BearerTokenMiddleware,
                settings=settings,
                exclude=[f"^{OPENAPI_PATH}(/|$)"],
                tokens=VerifiedTokens(),
            ),
        ],
        before_send=[echo_request_ids],
        exception_handlers=(problems or default_problems()).exception_handlers(),
        openapi_config=openapi_config(),
        request_max_body_size=settings.max_request_body_bytes,
        request_class=StrictJsonRequest,
        state=State(
            {
                "settings": settings,
                "draining": False,
                "http_metrics": http_metrics,
                "db_probe_timeout_seconds": db_probe_timeout_seconds,
            }
        ),
        # structlog is configured by the process (haengbok.logs); Litestar must not add its own.
        logging_config=None,
        debug=False,
    )
    _require_operation_ids(app)
    return app


def _pool_lifespan(settings: Settings) -> Lifespan:
    @asynccontextmanager
    async def pool_lifespan(app: Litestar) -> AsyncIterator[None]:
        idle_check = AsyncIdleCheck()
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            str(settings.database_url),
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            # Handlers open transactions explicitly; autocommit keeps statements after them
            # (the relay wake-up, reads) from leaving a transaction open on a pooled connection.
            kwargs={"autocommit": True, "application_name": "haengbok-api"},
            # A connection broken by a database restart is replaced instead of failing a
            # request; only connections idle for a while are checked (outbox.pooling).
            check=idle_check.check,
            open=False,
        )
        idle_check.watch(pool)  # one broken connection: check all the idle ones at once
        # wait=False: the API starts while the database is down; readiness reports it.
        await pool.open(wait=False)
        app.state.db_pool = pool

        async def connect_for_wakeups() -> psycopg.AsyncConnection[Any]:
            return await psycopg.AsyncConnection.connect(
                str(settings.database_url), autocommit=True, connect_timeout=5,
                application_name="haengbok-api-wakeup",
            )  # fmt: skip

        # Commands poke it after commit: one NOTIFY per few milliseconds of commits.
        wakeup = AsyncRelayWakeup(connect_for_wakeups)
        wakeup.start()
        app.state.relay_wakeup = wakeup
        try:
            yield
        finally:
            await wakeup.stop()
            await pool.close()

    return pool_lifespan


def _require_operation_ids(app: Litestar) -> None:
    """Fail at start-up, not in a client generator, when a route has no explicit operation id."""
    missing = [
        f"{sorted(handler.http_methods)} {route.path}"
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if isinstance(handler, HTTPRouteHandler)
        and handler.resolve_include_in_schema()
        and not handler.operation_id
    ]
    if missing:
        raise ValueError(f"routes without operation_id: {', '.join(missing)}")


async def _provide_settings(request: Request[Any, Any, Any]) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _provide_pool(request: Request[Any, Any, Any]) -> AsyncConnectionPool[Any]:
    pool: AsyncConnectionPool[Any] = request.app.state.db_pool
    return pool


async def _provide_connection(
    db_pool: NamedDependency[AsyncConnectionPool[Any]],
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A pooled autocommit connection for queries, returned when the response is sent."""
    async with db_pool.connection() as conn:
        yield conn


async def _provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = current_principal(request)
    if principal is None:
        raise NotAuthorizedException(detail="a bearer token is required")
    return principal


async def _provide_message_context(request: Request[Any, Any, Any]) -> MessageContext:
    return message_context(request)


async def _provide_command_runner(
    request: Request[Any, Any, Any],
    # Declared here so that every command route documents both headers in OpenAPI; the
    # runner reads (and validates) them from the request itself.
    idempotency_key: Annotated[
        str | None,
        HeaderParameter(
            name=IDEMPOTENCY_HEADER,
            description="Client-chosen key: a retry with the same key and body replays the "
            "first response instead of running the command again",
            max_length=MAX_KEY_LENGTH,
        ),
    ] = None,
    prefer: Annotated[
        str | None,
        HeaderParameter(
            name="Prefer",
            description="`wait=N`: answer 200 with the settled resource if it settles within "
            "N seconds (capped by the server)",
        ),
    ] = None,
) -> CommandRunner:
    # Pool and settings straight from the app state, not as dependencies: sibling dependencies
    # are resolved in an anyio task group per request, a cost the hot command path avoids.
    state = request.app.state
    wakeup: AsyncRelayWakeup | None = getattr(state, "relay_wakeup", None)
    return CommandRunner(request, state.db_pool, state.settings, wakeup.poke if wakeup else None)
