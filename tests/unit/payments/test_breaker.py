"""The circuit breaker's state machine, on a fake clock and an in-memory store: closed, open
after N consecutive failures, half-open with one trial after the cool-down, closed again on
the trial's success. Two breakers on one store play two worker processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from haengbok.payments.breaker import (
    BreakerRecord,
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    MemoryBreakerStore,
    StoreUnavailable,
)

THRESHOLD = 3
COOL_DOWN = 30.0
TRIAL_TIMEOUT = 5.0


class FakeClock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


class ProviderDown(Exception):
    pass


class ProcessKilled(BaseException):
    pass


def _breaker(store: MemoryBreakerStore, clock: FakeClock, refresh: float = 1.0) -> CircuitBreaker:
    return CircuitBreaker(
        "payments",
        store,
        clock=clock,
        failure_threshold=THRESHOLD,
        cool_down_seconds=COOL_DOWN,
        trial_timeout_seconds=TRIAL_TIMEOUT,
        refresh_seconds=refresh,
        failure_types=(ProviderDown,),
    )


def _fail() -> None:
    raise ProviderDown


def _fail_times(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(ProviderDown):
            breaker.call(_fail)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> MemoryBreakerStore:
    return MemoryBreakerStore()


@pytest.fixture
def breaker(store: MemoryBreakerStore, clock: FakeClock) -> CircuitBreaker:
    return _breaker(store, clock)


def _open(breaker: CircuitBreaker) -> None:
    _fail_times(breaker, THRESHOLD)
    assert breaker.state is BreakerState.OPEN


class TestClosed:
    def test_calls_go_through_and_return_their_result(self, breaker: CircuitBreaker) -> None:
        assert breaker.call(lambda: 42) == 42
        assert breaker.state is BreakerState.CLOSED

    def test_fewer_failures_than_the_threshold_keep_it_closed(
        self, breaker: CircuitBreaker
    ) -> None:
        _fail_times(breaker, THRESHOLD - 1)
        assert breaker.state is BreakerState.CLOSED

    def test_a_success_starts_the_count_of_consecutive_failures_again(
        self, breaker: CircuitBreaker
    ) -> None:
        _fail_times(breaker, THRESHOLD - 1)
        breaker.call(lambda: None)
        _fail_times(breaker, THRESHOLD - 1)
        assert breaker.state is BreakerState.CLOSED

    def test_exceptions_that_are_not_failures_pass_through_and_count_as_answers(
        self, breaker: CircuitBreaker
    ) -> None:
        for _ in range(THRESHOLD * 2):
            with pytest.raises(ValueError):
                breaker.call(lambda: int("not a number"))
        assert breaker.state is BreakerState.CLOSED

    def test_the_threshold_of_consecutive_failures_opens_it_in_the_store(
        self, breaker: CircuitBreaker, store: MemoryBreakerStore, clock: FakeClock
    ) -> None:
        _open(breaker)
        record = store.load("payments")
        assert record.state is BreakerState.OPEN
        assert record.failures == THRESHOLD
        assert record.opened_at == clock.now()
        assert record.next_attempt_at == clock.now() + timedelta(seconds=COOL_DOWN)

    def test_the_store_is_written_on_state_changes_only(
        self, breaker: CircuitBreaker, store: MemoryBreakerStore
    ) -> None:
        for _ in range(100):
            breaker.call(lambda: None)
        _fail_times(breaker, THRESHOLD - 1)
        assert store.writes == 0
        _fail_times(breaker, 1)
        assert store.writes == 1


class TestOpen:
    def test_calls_fail_fast_without_running(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        _open(breaker)
        clock.advance(10)
        ran = []
        with pytest.raises(CircuitOpen) as raised:
            breaker.call(lambda: ran.append(1))
        assert ran == []
        assert raised.value.retry_after_seconds == pytest.approx(COOL_DOWN - 10)

    def test_it_stays_open_until_the_cool_down_ends(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        _open(breaker)
        clock.advance(COOL_DOWN - 0.001)
        with pytest.raises(CircuitOpen):
            breaker.call(lambda: None)


class TestHalfOpen:
    def test_after_the_cool_down_one_trial_goes_through_and_its_success_closes_it(
        self, breaker: CircuitBreaker, store: MemoryBreakerStore, clock: FakeClock
    ) -> None:
        _open(breaker)
        clock.advance(COOL_DOWN)
        seen_during_trial = []

        def trial() -> str:
            seen_during_trial.append(store.load("payments").state)
            # Another thread's call while the trial runs: refused, the trial is the only one.
            with pytest.raises(CircuitOpen):
                breaker.call(lambda: None)
            return "ok"

        assert breaker.call(trial) == "ok"
        assert seen_during_trial == [BreakerState.HALF_OPEN]
        assert breaker.state is BreakerState.CLOSED
        assert store.load("payments").state is BreakerState.CLOSED
        assert store.load("payments").failures == 0

    def test_a_failed_trial_opens_it_for_another_cool_down(
        self, breaker: CircuitBreaker, store: MemoryBreakerStore, clock: FakeClock
    ) -> None:
        _open(breaker)
        clock.advance(COOL_DOWN + 5)
        _fail_times(breaker, 1)
        record = store.load("payments")
        assert record.state is BreakerState.OPEN
        assert record.failures == THRESHOLD + 1
        assert record.next_attempt_at == clock.now() + timedelta(seconds=COOL_DOWN)
        with pytest.raises(CircuitOpen):
            breaker.call(lambda: None)

    def test_a_trial_that_never_reports_is_taken_over_after_its_timeout(
        self, store: MemoryBreakerStore, clock: FakeClock
    ) -> None:
        dead, alive = _breaker(store, clock), _breaker(store, clock)
        _open(dead)
        clock.advance(COOL_DOWN)

        def killed() -> None:
            raise ProcessKilled

        # The process making the trial is shut down during the call: no verdict comes back.
        with pytest.raises(ProcessKilled):
            dead.call(killed)
        assert store.load("payments").state is BreakerState.HALF_OPEN
        with pytest.raises(CircuitOpen):
            alive.call(lambda: None)
        clock.advance(TRIAL_TIMEOUT)
        alive.call(lambda: None)
        assert store.load("payments").state is BreakerState.CLOSED


class TestSharedBetweenProcesses:
    def test_one_process_opening_it_makes_the_others_fail_fast_after_a_refresh(
        self, store: MemoryBreakerStore, clock: FakeClock
    ) -> None:
        first, second = _breaker(store, clock), _breaker(store, clock)
        second.call(lambda: None)  # has a fresh view of CLOSED
        _open(first)
        clock.advance(1.0)
        with pytest.raises(CircuitOpen):
            second.call(lambda: None)

    def test_only_one_process_makes_the_trial(
        self, store: MemoryBreakerStore, clock: FakeClock
    ) -> None:
        first, second = _breaker(store, clock, refresh=0), _breaker(store, clock, refresh=0)
        _open(first)
        clock.advance(COOL_DOWN)

        def trial() -> None:
            with pytest.raises(CircuitOpen):
                second.call(lambda: None)

        first.call(trial)
        assert store.load("payments").state is BreakerState.CLOSED

    def test_a_process_with_a_stale_view_does_not_overwrite_the_opening(
        self, store: MemoryBreakerStore, clock: FakeClock
    ) -> None:
        first, second = _breaker(store, clock), _breaker(store, clock)
        second.call(lambda: None)
        _open(first)
        opened = store.load("payments")
        # Within the refresh interval `second` still believes CLOSED and counts its failures.
        _fail_times(second, THRESHOLD)
        assert store.load("payments") == opened
        assert second.state is BreakerState.OPEN


class FailingStore(MemoryBreakerStore):
    def load(self, name: str) -> BreakerRecord:
        raise StoreUnavailable("database down")

    def replace(self, name: str, expected_version: int, record: BreakerRecord) -> BreakerRecord:
        raise StoreUnavailable("database down")


class TestStoreUnavailable:
    def test_the_breaker_still_protects_this_process(self, clock: FakeClock) -> None:
        breaker = _breaker(FailingStore(), clock)
        _fail_times(breaker, THRESHOLD)
        with pytest.raises(CircuitOpen):
            breaker.call(lambda: None)
        clock.advance(COOL_DOWN)
        breaker.call(lambda: None)
        assert breaker.state is BreakerState.CLOSED
