"""Dining's write side over real HTTP, a real database and real worker processes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from api.dining.commands import controllers
from api.dining.subscribers import subscribers
from domain.dining.clock import utc_now
from domain.dining.saga import DEFAULT_STEP_DEADLINE_MS
from haengbok.bootstrap import problems
from haengbok.payments.fake import FakePaymentProvider
from haengbok.settings import Settings
from haengbok.worker import WorkerProcess
from outbox.consumers import routes
from outbox.relay import sync_routes

WORKER_SETTINGS = replace(
    Settings(),
    worker_threads=4,
    relay_idle_poll_seconds=0.1,
    saga_deadline_poll_seconds=0.1,
    min_backoff_ms=10,
    max_backoff_ms=100,
)


class MovableClock:
    """The API's clock: the real one, moved forward when a test needs "after the visit"."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return utc_now() + self.offset

    def advance(self, delta: dt.timedelta) -> None:
        self.offset += delta


@pytest.fixture
def step_deadline_ms() -> int:
    """The saga's step deadline, for the API (a request starts the saga) and the workers
    alike; a test that needs a short one parametrizes it."""
    return DEFAULT_STEP_DEADLINE_MS


@pytest.fixture
def settings(database_url: str, step_deadline_ms: int) -> Settings:
    return Settings(
        database_url=database_url,
        read_wait_max_seconds=5.0,
        pool_min_size=1,
        pool_max_size=8,
        dining_step_deadline_seconds=step_deadline_ms / 1000,
    )


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def app(settings: Settings, clock: MovableClock) -> Litestar:
    return create_app(settings, controllers=controllers(clock), problems=problems())


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def provider() -> FakePaymentProvider:
    return FakePaymentProvider()


class Workers:
    """Start and stop worker processes with every Dining subscriber but those left out.

    Every subscription is recorded up front, so messages for a context whose subscriber is not
    running wait in its queue (the context is "down") instead of going nowhere.
    """

    def __init__(
        self,
        database_url: str,
        provider: FakePaymentProvider,
        step_deadline_ms: int = DEFAULT_STEP_DEADLINE_MS,
    ) -> None:
        self.database_url = database_url
        self.provider = provider
        self.step_deadline_ms = step_deadline_ms
        self.running: list[WorkerProcess] = []
        with psycopg.connect(database_url) as conn, conn.transaction():
            sync_routes(conn, routes(subscribers(provider)))

    def start(
        self,
        *,
        without: Collection[str] = (),
        only: Collection[str] | None = None,
    ) -> WorkerProcess:
        """A worker running the named subscribers (``only``), or all but ``without``, with the
        test's step deadline (the ``step_deadline_ms`` fixture, which the API has too)."""
        subs = subscribers(self.provider, step_deadline_ms=self.step_deadline_ms)
        chosen = [s for s in subs if s.name not in without and (only is None or s.name in only)]
        proc = WorkerProcess(WORKER_SETTINGS, self.database_url, subscribers=chosen)
        proc.start()
        self.running.append(proc)
        return proc

    def stop(self, proc: WorkerProcess) -> None:
        self.running.remove(proc)
        proc.stop(timeout_seconds=5)


@pytest.fixture
def workers(
    database_url: str, provider: FakePaymentProvider, step_deadline_ms: int
) -> Iterator[Workers]:
    running = Workers(database_url, provider, step_deadline_ms)
    yield running
    for proc in list(running.running):
        running.stop(proc)


@pytest.fixture
def restaurant(client: TestClient[Litestar], settings: Settings) -> dict[str, Any]:
    """A restaurant with four seats per slot, registered through the API by its owner."""
    from tests.integration.dining.support import owner, register_restaurant

    return register_restaurant(client, owner(settings), capacity_per_slot=4)
