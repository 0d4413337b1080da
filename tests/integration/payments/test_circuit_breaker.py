"""The HTTP client's circuit breaker against a real sandbox, with its state in PostgreSQL:
a failing provider opens it (the row says OPEN), calls then fail fast without reaching the
provider, after the cool-down one trial goes through (HALF_OPEN), and when the provider has
recovered the trial closes it. Nothing is restarted along the way."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from domain.payments import ChargeResult, PaymentUnavailable
from haengbok.payments.breaker import CircuitBreaker, CircuitOpen
from haengbok.payments.breaker_store import PostgresBreakerStore
from haengbok.payments.client import BREAKER_NAME, HttpPaymentProvider
from haengbok.settings import Settings
from tests.integration.payments.sandbox_server import RunningSandbox, running_sandbox
from tests.waiting import wait_until

THRESHOLD = 3
COOL_DOWN = 0.5
# Fail-fast calls must not wait for anything: this is far below any HTTP round trip timeout.
FAST = 0.25


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def store(database_url: str) -> Iterator[PostgresBreakerStore]:
    store = PostgresBreakerStore(database_url)
    yield store
    store.close()


@pytest.fixture
def client(sandbox: RunningSandbox, store: PostgresBreakerStore) -> Iterator[HttpPaymentProvider]:
    breaker = CircuitBreaker(
        BREAKER_NAME,
        store,
        failure_threshold=THRESHOLD,
        cool_down_seconds=COOL_DOWN,
        trial_timeout_seconds=5.0,
        refresh_seconds=0.05,
        failure_types=(PaymentUnavailable,),
    )
    with HttpPaymentProvider(sandbox.url, breaker, read_timeout_seconds=2.0) as provider:
        yield provider


def _row(database_url: str) -> dict[str, Any]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT * FROM ops.circuit_breaker WHERE name = %s", (BREAKER_NAME,)
        ).fetchone()
    assert row is not None, "the breaker registered itself on first use"
    return row


def _charge(client: HttpPaymentProvider) -> ChargeResult:
    return client.charge(f"key-{uuid.uuid4()}", 10_000, f"reservation-{uuid.uuid4()}")


def _trip(client: HttpPaymentProvider, sandbox: RunningSandbox) -> None:
    sandbox.behave(failure_rate=1.0)
    for _ in range(THRESHOLD):
        with pytest.raises(PaymentUnavailable) as raised:
            _charge(client)
        assert not isinstance(raised.value.__cause__, CircuitOpen), "the provider was called"


def _wait_for_cool_down(database_url: str) -> None:
    due = _row(database_url)["next_attempt_at"]
    wait_until(lambda: datetime.now(UTC) >= due, timeout=COOL_DOWN + 5)


class TestOpening:
    def test_consecutive_failures_open_it_for_every_process_to_see(
        self, client: HttpPaymentProvider, sandbox: RunningSandbox, database_url: str
    ) -> None:
        _charge(client)
        assert _row(database_url)["state"] == "CLOSED"

        _trip(client, sandbox)

        row = _row(database_url)
        assert row["state"] == "OPEN"
        assert row["failures"] == THRESHOLD
        assert row["opened_at"] is not None
        assert row["next_attempt_at"] > row["opened_at"]

    def test_while_open_calls_fail_fast_without_reaching_the_provider(
        self, client: HttpPaymentProvider, sandbox: RunningSandbox
    ) -> None:
        _trip(client, sandbox)
        reached = sandbox.requests()

        for _ in range(20):
            started = time.perf_counter()
            with pytest.raises(PaymentUnavailable) as raised:
                _charge(client)
            assert time.perf_counter() - started < FAST
            assert isinstance(raised.value.__cause__, CircuitOpen)
            assert raised.value.retry_after_seconds is not None

        assert sandbox.requests() == reached

    def test_a_decline_is_an_answer_and_never_opens_it(
        self, client: HttpPaymentProvider, sandbox: RunningSandbox, database_url: str
    ) -> None:
        sandbox.behave(decline_rate=1.0)
        for _ in range(THRESHOLD * 2):
            assert not _charge(client).approved
        assert _row(database_url)["state"] == "CLOSED"


class TestRecovery:
    def test_after_the_cool_down_a_failed_trial_opens_it_again(
        self, client: HttpPaymentProvider, sandbox: RunningSandbox, database_url: str
    ) -> None:
        _trip(client, sandbox)
        first_opening = _row(database_url)
        _wait_for_cool_down(database_url)
        reached = sandbox.requests()

        with pytest.raises(PaymentUnavailable):
            _charge(client)  # the trial, still failing

        assert sandbox.requests() == reached + 1, "exactly one trial request"
        row = _row(database_url)
        assert row["state"] == "OPEN"
        assert row["opened_at"] > first_opening["opened_at"]
        assert row["failures"] == THRESHOLD + 1

    def test_half_open_lets_one_trial_through_and_its_success_closes_it(
        self, client: HttpPaymentProvider, sandbox: RunningSandbox, database_url: str
    ) -> None:
        _trip(client, sandbox)
        # The provider recovers, slowly enough that the trial can be watched in flight.
        sandbox.behave(latency_ms=600)
        _wait_for_cool_down(database_url)
        outcome: list[ChargeResult] = []
        trial = threading.Thread(target=lambda: outcome.append(_charge(client)))
        trial.start()
        try:
            wait_until(lambda: _row(database_url)["state"] == "HALF_OPEN", timeout=5)
            reached = sandbox.requests()
            with pytest.raises(PaymentUnavailable) as raised:
                _charge(client)  # someone else while the trial runs: refused at once
            assert isinstance(raised.value.__cause__, CircuitOpen)
            assert sandbox.requests() == reached
        finally:
            trial.join(timeout=10)

        assert outcome and outcome[0].approved
        row = _row(database_url)
        assert (row["state"], row["failures"]) == ("CLOSED", 0)
        sandbox.behave()
        assert _charge(client).approved


class TestUnreachable:
    def test_nothing_listening_counts_as_a_failure(self, store: PostgresBreakerStore) -> None:
        breaker = CircuitBreaker(
            BREAKER_NAME, store, failure_threshold=1, failure_types=(PaymentUnavailable,)
        )
        # Port 9 (discard) on the loopback: refused at once, nothing is listening there.
        with HttpPaymentProvider("http://127.0.0.1:9", breaker) as client:
            with pytest.raises(PaymentUnavailable) as raised:
                _charge(client)
            assert not isinstance(raised.value.__cause__, CircuitOpen)
            with pytest.raises(PaymentUnavailable) as raised:
                _charge(client)
            assert isinstance(raised.value.__cause__, CircuitOpen)


class TestProductionWiring:
    def test_from_settings_reads_the_environment_and_shares_the_payments_breaker(
        self, sandbox: RunningSandbox, database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HAENGBOK_PAYMENT_URL", sandbox.url)
        monkeypatch.setenv("HAENGBOK_PAYMENT_BREAKER_FAILURES", "1")
        monkeypatch.setenv("HAENGBOK_PAYMENT_BREAKER_COOL_DOWN_SECONDS", "60")
        settings = Settings.from_env()

        with HttpPaymentProvider.from_settings(settings, database_url) as client:
            assert _charge(client).approved
            sandbox.behave(failure_rate=1.0)
            with pytest.raises(PaymentUnavailable):
                _charge(client)

        row = _row(database_url)
        assert (row["state"], row["failures"]) == ("OPEN", 1)
        assert (row["next_attempt_at"] - row["opened_at"]).total_seconds() == 60
