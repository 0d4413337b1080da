"""The steady phase's reports: the per-window p99 (the warm-up's transient stays visible) and the
summary of repeated runs."""

from __future__ import annotations

import math

from tests.bench.bench_dining_e2e import latency_series, repeat_summary


class TestLatencySeries:
    def test_each_window_gets_the_p99_of_the_requests_due_in_it(self) -> None:
        started = [("a", 100.0), ("b", 101.0), ("c", 105.5), ("d", 109.9)]
        confirmed = {"a": 100.2, "b": 101.5, "c": 105.6, "d": 110.0}

        series = latency_series(started, confirmed, 5.0)

        assert [round(ms) for ms in series] == [500, 100]

    def test_a_request_never_confirmed_counts_as_infinitely_late(self) -> None:
        series = latency_series([("a", 0.0), ("b", 0.5)], {"a": 0.1}, 5.0)

        assert series == [math.inf]

    def test_no_requests_no_windows(self) -> None:
        assert latency_series([], {}, 5.0) == []


def test_repeated_runs_say_in_how_many_the_goal_held() -> None:
    line = repeat_summary([493.2, 1577.0, None, 500.0])
    assert line == "steady, 4 runs: p99 493, 1577, -, 500 ms; p99 <= 500 ms in 2 of 4"
