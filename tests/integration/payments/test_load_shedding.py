"""Load shedding over real HTTP: a command route refuses new work with 503, Retry-After and a
problem detail while the payment circuit is open or a queue it feeds is over its limits, runs
nothing when it refuses, and takes work again otherwise. Operators see the breaker in
``/ops/circuit-breakers`` and ``/metrics``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from litestar import Controller, Litestar, Request, post
from litestar.di import NamedDependency, Provide
from prometheus_client.parser import text_string_to_metric_families
from psycopg_pool import AsyncConnectionPool

from api.app import create_app
from api.auth import Role
from api.ops import OpsController
from api.shedding import LoadShedder, provide_load_shedder, refuse_when_overloaded
from haengbok.payments.breaker import BreakerRecord, BreakerState
from haengbok.payments.breaker_store import PostgresBreakerStore
from haengbok.settings import Settings
from tests.integration.api.support import assert_problem, bearer
from tests.integration.payments.sandbox_server import serving

QUEUE = "shed_probe_q"
MAX_DEPTH = 2
MAX_AGE = 60.0
QUEUE_RETRY_AFTER = 7


class ProbeController(Controller):
    """Two command routes: one guarded, one calling the shedder itself (the two ways the
    Dining routes can use it). Each counts the commands it actually ran."""

    path = "/probe"

    @post(
        "/guarded",
        operation_id="probeGuarded",
        status_code=202,
        guards=[
            refuse_when_overloaded(
                queues=[QUEUE],
                max_depth=MAX_DEPTH,
                max_age_seconds=MAX_AGE,
                retry_after_seconds=QUEUE_RETRY_AFTER,
            )
        ],
    )
    async def guarded(self, request: Request[Any, Any, Any]) -> dict[str, bool]:
        request.app.state.ran += 1
        return {"accepted": True}

    @post("/checked", operation_id="probeChecked", status_code=202)
    async def checked(
        self,
        request: Request[Any, Any, Any],
        db_pool: NamedDependency[AsyncConnectionPool[Any]],
        load_shedder: NamedDependency[LoadShedder],
    ) -> dict[str, bool]:
        await load_shedder.ensure_accepting(db_pool, queues=[QUEUE], max_depth=MAX_DEPTH)
        request.app.state.ran += 1
        return {"accepted": True}


def _app(
    database_url: str, ttl_seconds: float, queue_ttl_seconds: float | None = None
) -> tuple[Litestar, Settings]:
    settings = Settings(database_url=database_url, pool_min_size=1, pool_max_size=4)
    app = create_app(
        settings,
        controllers=[ProbeController, OpsController],
        extra_dependencies={"load_shedder": Provide(provide_load_shedder)},
    )
    app.state.ran = 0
    app.state["load_shedder"] = LoadShedder(
        ttl_seconds=ttl_seconds, queue_ttl_seconds=queue_ttl_seconds
    )
    return app, settings


class Api:
    def __init__(self, app: Litestar, settings: Settings, http: httpx.Client) -> None:
        self.app, self.http = app, http
        self.customer = bearer(settings, Role.CUSTOMER)
        self.ops = bearer(settings, Role.OPS, subject="operator")

    def command(self, route: str = "guarded") -> httpx.Response:
        return self.http.post(f"/probe/{route}", headers=self.customer)

    @property
    def ran(self) -> int:
        return int(self.app.state.ran)


def _serve(
    database_url: str, ttl_seconds: float, queue_ttl_seconds: float | None = None
) -> Iterator[Api]:
    app, settings = _app(database_url, ttl_seconds, queue_ttl_seconds)
    with serving(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield Api(app, settings, http)


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    # No caching: every request reads the current state (the cache has its own test).
    yield from _serve(database_url, ttl_seconds=0)


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create(%s)", (QUEUE,))
        yield conn


def _set_breaker(database_url: str, state: BreakerState, next_attempt_in: float) -> None:
    store = PostgresBreakerStore(database_url)
    try:
        current = store.load("payments")
        now = datetime.now(UTC)
        record = BreakerRecord(
            state=state,
            failures=5,
            opened_at=now,
            next_attempt_at=now + timedelta(seconds=next_attempt_in),
        )
        store.replace("payments", current.version, record)
    finally:
        store.close()


def _send(db: psycopg.Connection[Any], count: int) -> None:
    for _ in range(count):
        db.execute("SELECT pgmq.send(%s, %s::jsonb)", (QUEUE, f'{{"id": "{uuid.uuid4()}"}}'))


class TestAccepting:
    @pytest.mark.parametrize("route", ["guarded", "checked"])
    def test_a_closed_circuit_and_short_queues_let_the_command_run(
        self, api: Api, db: psycopg.Connection[Any], route: str
    ) -> None:
        _send(db, MAX_DEPTH)
        assert api.command(route).status_code == 202
        assert api.ran == 1

    def test_an_open_circuit_whose_cool_down_is_over_takes_work_for_the_trial(
        self, api: Api, db: psycopg.Connection[Any], database_url: str
    ) -> None:
        _set_breaker(database_url, BreakerState.OPEN, next_attempt_in=-1)
        assert api.command().status_code == 202


class TestOpenCircuit:
    @pytest.mark.parametrize("route", ["guarded", "checked"])
    def test_refuses_with_503_retry_after_the_cool_down_and_runs_nothing(
        self, api: Api, db: psycopg.Connection[Any], database_url: str, route: str
    ) -> None:
        _set_breaker(database_url, BreakerState.OPEN, next_attempt_in=30)

        response = api.command(route)

        body = assert_problem(response, 503)
        assert body["type"] == "urn:haengbok:problem:temporarily-unavailable"
        assert "Retry in" in body["detail"] and "nothing was done" in body["detail"]
        assert 28 <= int(response.headers["Retry-After"]) <= 30
        assert api.ran == 0

    def test_a_running_trial_refuses_until_it_reports(
        self, api: Api, db: psycopg.Connection[Any], database_url: str
    ) -> None:
        _set_breaker(database_url, BreakerState.HALF_OPEN, next_attempt_in=3)
        response = api.command()
        assert_problem(response, 503)
        assert 1 <= int(response.headers["Retry-After"]) <= 3


class TestQueueOverLimit:
    def test_a_queue_deeper_than_its_limit_refuses(
        self, api: Api, db: psycopg.Connection[Any]
    ) -> None:
        _send(db, MAX_DEPTH + 1)
        response = api.command()
        body = assert_problem(response, 503)
        assert "backlog" in body["detail"]
        assert response.headers["Retry-After"] == str(QUEUE_RETRY_AFTER)
        assert api.ran == 0

    def test_a_queue_with_a_message_older_than_its_limit_refuses(
        self, api: Api, db: psycopg.Connection[Any]
    ) -> None:
        _send(db, 1)
        db.execute(
            f"UPDATE pgmq.q_{QUEUE} SET enqueued_at = now() - make_interval(secs => %s)",
            (MAX_AGE + 30,),
        )
        assert_problem(api.command(), 503)
        assert api.ran == 0


class TestCaching:
    def test_the_state_is_read_once_per_ttl_not_per_request(
        self, database_url: str, db: psycopg.Connection[Any]
    ) -> None:
        for api in _serve(database_url, ttl_seconds=3600):
            assert api.command().status_code == 202
            _set_breaker(database_url, BreakerState.OPEN, next_attempt_in=30)
            # Still the reading of the first request: no query was made for this one.
            assert api.command().status_code == 202
            assert api.ran == 2

    def test_the_queues_are_read_on_their_own_ttl_the_breaker_on_its_own(
        self, database_url: str, db: psycopg.Connection[Any]
    ) -> None:
        for api in _serve(database_url, ttl_seconds=0, queue_ttl_seconds=3600):
            assert api.command().status_code == 202
            _send(db, MAX_DEPTH + 1)
            # The queue's reading is the first request's: too deep by now, still taken.
            assert api.command().status_code == 202
            _set_breaker(database_url, BreakerState.OPEN, next_attempt_in=30)
            # The breaker's reading lasts no time: seen at once.
            assert_problem(api.command(), 503)
            assert api.ran == 2


class TestOperatorsSeeTheBreaker:
    def test_ops_lists_it_with_the_wait(
        self, api: Api, db: psycopg.Connection[Any], database_url: str
    ) -> None:
        _set_breaker(database_url, BreakerState.OPEN, next_attempt_in=30)
        response = api.http.get("/ops/circuit-breakers", headers=api.ops)
        assert response.status_code == 200, response.text
        (breaker,) = response.json()
        assert breaker["name"] == "payments"
        assert breaker["state"] == "OPEN"
        assert breaker["failures"] == 5
        assert 28 <= breaker["retry_in_seconds"] <= 30

    def test_customers_may_not(self, api: Api, db: psycopg.Connection[Any]) -> None:
        assert_problem(api.http.get("/ops/circuit-breakers", headers=api.customer), 403)

    def test_metrics_export_the_state_as_gauges(
        self, api: Api, db: psycopg.Connection[Any], database_url: str
    ) -> None:
        _set_breaker(database_url, BreakerState.OPEN, next_attempt_in=30)
        response = api.http.get("/metrics")
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
        }
        state = "haengbok_circuit_breaker_state"
        assert samples[(state, (("breaker", "payments"), ("state", "OPEN")))] == 1
        assert samples[(state, (("breaker", "payments"), ("state", "CLOSED")))] == 0
        assert samples[("haengbok_circuit_breaker_failures", (("breaker", "payments"),))] == 5
