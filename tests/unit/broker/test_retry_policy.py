"""Retry backoff and the error text a parked message keeps: pure functions, no database."""

from __future__ import annotations

from outbox.parking import ERROR_TEXT_LIMIT, error_text
from outbox.retries import backoff_ms


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
