"""Liveness and readiness probes, and draining before shutdown.

Liveness answers from the process alone: a database outage must not make Kubernetes restart
every API pod (that would only add load). Readiness checks the database with a short timeout
and turns false as soon as the process starts draining, so the Service stops sending new
requests while in-flight ones finish (zero-downtime deploys).
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import structlog
from litestar import Controller, Litestar, Request, get

from api.auth import NO_SECURITY, PUBLIC
from api.openapi import problem_responses
from api.problems import problem
from sql import query

log = structlog.get_logger("api.health")
DRAINING_RETRY_AFTER_SECONDS = 5


class HealthStatus(msgspec.Struct, kw_only=True):
    status: str


def begin_draining(app: Litestar) -> None:
    """Mark the app as draining: readiness fails from now on, requests still complete.

    The server runner calls this on SIGTERM, then waits ``settings.drain_seconds`` before it
    stops accepting connections.
    """
    app.state.draining = True
    log.info("draining_started")


def is_draining(app: Litestar) -> bool:
    """True once ``begin_draining`` was called."""
    return bool(app.state.get("draining", False))


class HealthController(Controller):
    """``/health/live`` and ``/health/ready``; no token (kubelet probes carry none)."""

    path = "/health"
    tags = ["ops"]
    opt = PUBLIC
    security = NO_SECURITY

    @get("/live", operation_id="getLiveness", summary="Liveness probe")
    async def live(self) -> HealthStatus:
        """The process is up and its event loop answers; never touches the database."""
        return HealthStatus(status="live")

    @get(
        "/ready",
        operation_id="getReadiness",
        summary="Readiness probe",
        responses=problem_responses(503),
    )
    async def ready(self, request: Request[Any, Any, Any]) -> HealthStatus:
        """Ready when not draining and the database answers within the probe timeout."""
        app = request.app
        if is_draining(app):
            raise problem(
                503,
                "draining",
                title="Draining",
                detail="This instance is shutting down; use another one.",
                headers={"Retry-After": str(DRAINING_RETRY_AFTER_SECONDS)},
            )
        timeout: float = app.state.db_probe_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                async with app.state.db_pool.connection(timeout=timeout) as conn:
                    await conn.execute(query("api.ping"))
        except Exception as exc:  # any failure means "not ready"; the reason goes to the log
            log.warning("readiness_database_unavailable", error=repr(exc))
            raise problem(
                503,
                "database-unavailable",
                title="Database unavailable",
                detail="The database did not answer in time.",
                headers={"Retry-After": "2"},
            ) from exc
        return HealthStatus(status="ready")
