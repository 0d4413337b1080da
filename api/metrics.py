"""Prometheus metrics: HTTP traffic counted in process, platform state read from the database at
scrape time (so every API replica reports the same numbers for queues, relay, projections,
sagas, dead letters and circuit breakers, and a dead worker cannot leave stale values behind).

Each app owns its registry: no module-level collectors, so several apps (tests) never clash.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import structlog
from litestar import Controller, Request, Response, get
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from api.auth import NO_SECURITY, PUBLIC
from api.circuit_breakers import BREAKER_STATES, CircuitBreakerView, read_circuit_breakers
from api.ops_queries import OpsSnapshot, read_ops_snapshot

log = structlog.get_logger("api.metrics")
T = TypeVar("T")
# The classic text exposition format that generate_latest writes (Litestar adds the charset).
PROMETHEUS_MEDIA_TYPE = "text/plain; version=0.0.4"
# Statuses a saga can be in (saga.instance CHECK): reported as 0 rather than missing.
SAGA_STATUSES = ("RUNNING", "COMPENSATING", "COMPLETED", "COMPENSATED", "PARKED")
_SCRAPE_TIMEOUT_SECONDS = 3.0


class HttpMetrics:
    """Request counters and latency histograms, registered in this app's own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "haengbok_http_requests",
            "HTTP requests answered, by route template and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "haengbok_http_request_duration_seconds",
            "Time to the end of the response body, by route template",
            ("method", "route"),
            registry=self.registry,
        )


class HttpMetricsMiddleware(ASGIMiddleware):
    """Counts each routed request; labels use the route template, never the raw path."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, metrics: HttpMetrics) -> None:
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Time the request and record its final status (500 when the app raised)."""
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, record_status)
        except HTTPException as exc:
            # Raised by inner middleware (auth) and rendered further out: count its status.
            status = exc.status_code
            raise
        finally:
            route = scope.get("path_template") or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)


class _Snapshot(Collector):
    """Hands pre-built metric families to ``generate_latest`` (they were read asynchronously)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def ops_families(snapshot: OpsSnapshot) -> Iterator[Metric]:
    """Gauges for one ops snapshot (queues, relay, projections, sagas, parked messages)."""
    depth = _gauge("haengbok_queue_depth", "Messages in the pgmq queue", ["queue"])
    visible = _gauge("haengbok_queue_visible_depth", "Messages ready to be read", ["queue"])
    oldest = _gauge(
        "haengbok_queue_oldest_message_age_seconds", "Age of the oldest message", ["queue"]
    )
    parked = _gauge(
        "haengbok_parked_messages", "Dead-lettered messages kept for an operator", ["queue"]
    )
    queue_names = {q.queue_name for q in snapshot.queues} | set(snapshot.parked)
    for q in snapshot.queues:
        depth.add_metric([q.queue_name], q.length)
        visible.add_metric([q.queue_name], q.visible_length)
        oldest.add_metric([q.queue_name], q.oldest_age_seconds or 0.0)
    for name in sorted(queue_names):
        parked.add_metric([name], snapshot.parked.get(name, 0))
    yield from (depth, visible, oldest, parked)

    pending = _gauge("haengbok_relay_pending_events", "Committed events not yet relayed")
    pending.add_metric([], snapshot.relay.pending)
    relay_age = _gauge(
        "haengbok_relay_oldest_pending_age_seconds", "Age of the oldest event not yet relayed"
    )
    relay_age.add_metric([], snapshot.relay.oldest_seconds)
    head = _gauge("haengbok_log_head_position", "Highest global position assigned by the relay")
    head.add_metric([], snapshot.log_head)
    yield from (pending, relay_age, head)

    lag = _gauge(
        "haengbok_projection_lag_events",
        "Relayed events a projection has not applied",
        ["projection"],
    )
    position = _gauge("haengbok_projection_position", "A projection's checkpoint", ["projection"])
    lag_age = _gauge(
        "haengbok_projection_lag_seconds",
        "Age of the oldest relayed event a projection has not applied (0 when caught up)",
        ["projection"],
    )
    for p in snapshot.projections:
        lag.add_metric([p.name], p.lag)
        position.add_metric([p.name], p.position)
        lag_age.add_metric([p.name], p.lag_seconds)
    yield from (lag, position, lag_age)

    sagas = _gauge(
        "haengbok_saga_instances", "Saga instances by type and status", ["saga_type", "status"]
    )
    counts = {(s.saga_type, s.status): s.instances for s in snapshot.sagas}
    for saga_type in sorted({s.saga_type for s in snapshot.sagas}):
        for status in SAGA_STATUSES:
            sagas.add_metric([saga_type, status], counts.get((saga_type, status), 0))
    yield sagas


def breaker_families(breakers: Sequence[CircuitBreakerView]) -> Iterator[Metric]:
    """One gauge per breaker and state (1 for the state it is in), and its failure count."""
    state = _gauge(
        "haengbok_circuit_breaker_state",
        "1 for the state a circuit breaker is in (CLOSED, OPEN, HALF_OPEN), else 0",
        ["breaker", "state"],
    )
    failures = _gauge(
        "haengbok_circuit_breaker_failures",
        "Consecutive failures that opened the breaker last (0 while closed)",
        ["breaker"],
    )
    for b in breakers:
        for name in BREAKER_STATES:
            state.add_metric([b.name, name], 1 if b.state == name else 0)
        failures.add_metric([b.name], b.failures)
    yield from (state, failures)


async def _read_db(
    pool: AsyncConnectionPool[Any],
    acquire_timeout: float,
    read: Callable[[AsyncConnection[Any]], Awaitable[T]],
) -> T | None:
    # Borrowing a connection is bounded like the readiness probe; the snapshot's reads carry a
    # statement timeout (ops.scrape_guard), and this outer bound covers a hung network.
    try:
        async with asyncio.timeout(acquire_timeout + _SCRAPE_TIMEOUT_SECONDS):
            async with pool.connection(timeout=acquire_timeout) as conn:
                return await read(conn)
    except Exception as exc:  # a failed read is reported as a gauge, not as a failed scrape
        log.warning("metrics_db_read_failed", error=repr(exc), read=read.__name__)
        return None


class MetricsController(Controller):
    """``GET /metrics`` in the Prometheus text format; no token (scraped from inside)."""

    path = "/metrics"
    tags = ["ops"]

    @get(
        "/",
        operation_id="getMetrics",
        opt=PUBLIC,
        security=NO_SECURITY,
        media_type=PROMETHEUS_MEDIA_TYPE,
        summary="Prometheus metrics",
    )
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """HTTP metrics of this replica plus platform gauges read from the database now."""
        state = request.app.state
        timeout = state.db_probe_timeout_seconds
        snapshot = await _read_db(state.db_pool, timeout, read_ops_snapshot)
        up = _gauge("haengbok_ops_scrape_ok", "1 when the database gauges could be read")
        up.add_metric([], 1 if snapshot is not None else 0)
        families: list[Metric] = [up]
        if snapshot is not None:
            families.extend(ops_families(snapshot))
            # Only after a good snapshot: a database that just failed is not asked twice.
            breakers = await _read_db(state.db_pool, timeout, read_circuit_breakers)
            families.extend(breaker_families(breakers or []))
        db_registry = CollectorRegistry(auto_describe=False)
        db_registry.register(_Snapshot(families))
        metrics: HttpMetrics = state.http_metrics
        body = generate_latest(metrics.registry) + generate_latest(db_registry)
        return Response(body, media_type=PROMETHEUS_MEDIA_TYPE)
