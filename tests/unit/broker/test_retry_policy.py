"""Retry backoff, transient retries and the error text a parked message keeps: no database."""

from __future__ import annotations

import logging

import dramatiq

from outbox.broker_message import PgmqMessageProxy
from outbox.parking import ERROR_TEXT_LIMIT, StoredMessage, error_text
from outbox.retries import PgmqRetries, QuietTransientFailures, backoff_ms


class TestBackoff:
    def test_doubles_per_retry_with_jitter_in_the_upper_half(self) -> None:
        for retries, ceiling in [(0, 100), (1, 200), (2, 400), (3, 800)]:
            delays = {backoff_ms(retries, 100, 10_000) for _ in range(200)}
            assert all(ceiling / 2 <= d <= ceiling for d in delays)
            assert len(delays) > 1, "jitter spreads retries that failed together"

    def test_never_exceeds_the_maximum(self) -> None:
        assert all(backoff_ms(60, 100, 5_000) <= 5_000 for _ in range(100))


def _deep(n: int) -> None:
    if n == 0:
        raise KeyError("the innermost frame")
    _deep(n - 1)


class TestErrorText:
    def test_starts_with_type_and_message_and_keeps_the_innermost_frames(self) -> None:
        try:
            _deep(50)
        except KeyError as exc:
            text = error_text(exc)
        assert text.startswith("KeyError: 'the innermost frame'\n")
        assert 'raise KeyError("the innermost frame")' in text
        assert len(text) <= ERROR_TEXT_LIMIT

    def test_a_huge_message_is_cut_but_the_traceback_tail_survives(self) -> None:
        try:
            raise ValueError("x" * 10 * ERROR_TEXT_LIMIT)
        except ValueError as exc:
            text = error_text(exc)
        assert len(text) <= ERROR_TEXT_LIMIT
        assert text.startswith("ValueError: xxx")
        assert "test_retry_policy.py" in text


class _Unavailable(Exception):
    """An outside service that says it is down (as domain.payments.PaymentUnavailable does)."""

    transient = True

    def __init__(self, retry_after_seconds: float | None = None) -> None:
        super().__init__("provider unavailable")
        self.retry_after_seconds = retry_after_seconds


def _delivery(message_id: str = "m-1") -> PgmqMessageProxy:
    message = dramatiq.Message(
        queue_name="q", actor_name="missing_actor", args=(), kwargs={}, options={},
        message_id=message_id,
    )  # fmt: skip
    return PgmqMessageProxy(message, StoredMessage("q", 1, 1, None, {}, None))


class TestTransientRetries:
    """A transient failure gives its attempt back, so pgmq's read count stays put: the back-off
    counts the message's transient failures itself (it stayed at a few hundred ms while the
    payment circuit was open, a hot loop), and waits as long as the failure asks."""

    def _fail(self, retries: PgmqRetries, delivery: PgmqMessageProxy, exc: Exception) -> int:
        retries.after_process_message(dramatiq.Broker(), delivery, exception=exc)
        assert delivery.attempt_counts is False
        assert delivery.retry_in_ms is not None
        return delivery.retry_in_ms

    def test_the_back_off_grows_with_each_transient_failure(self) -> None:
        retries = PgmqRetries(min_backoff=100, max_backoff=100_000)
        delays = [self._fail(retries, _delivery(), _Unavailable()) for _ in range(6)]
        for failures, delay in enumerate(delays, start=1):
            ceiling = 100 * 2 ** (failures - 1)
            assert ceiling / 2 <= delay <= ceiling, (failures, delays)

    def test_success_starts_the_count_again(self) -> None:
        retries = PgmqRetries(min_backoff=100, max_backoff=100_000)
        for _ in range(5):
            self._fail(retries, _delivery(), _Unavailable())
        retries.after_process_message(dramatiq.Broker(), _delivery(), exception=None)
        assert self._fail(retries, _delivery(), _Unavailable()) <= 100

    def test_each_message_has_its_own_count(self) -> None:
        retries = PgmqRetries(min_backoff=100, max_backoff=100_000)
        for _ in range(5):
            self._fail(retries, _delivery("a"), _Unavailable())
        assert self._fail(retries, _delivery("b"), _Unavailable()) <= 100

    def test_it_waits_as_long_as_the_failure_asks_up_to_the_maximum(self) -> None:
        retries = PgmqRetries(min_backoff=100, max_backoff=30_000)
        assert self._fail(retries, _delivery("a"), _Unavailable(25)) == 25_000
        assert self._fail(retries, _delivery("b"), _Unavailable(600)) == 30_000

    def test_dramatiqs_traceback_of_a_transient_failure_is_dropped_and_others_kept(self) -> None:
        quiet = QuietTransientFailures()

        def record(exc: BaseException) -> logging.LogRecord:
            return logging.LogRecord(
                "dramatiq.worker.WorkerThread", logging.ERROR, __file__, 1,
                "Failed to process message %s with unhandled exception.", ("m",),
                (type(exc), exc, None),
            )  # fmt: skip

        assert quiet.filter(record(_Unavailable())) is False
        assert quiet.filter(record(KeyError("a bug"))) is True
