"""The relay's pacing: at once while batches are small, spaced while they are large, and eager
again once a batch run right after another is small."""

from __future__ import annotations

import logging

import pytest

from outbox.pacing import Pacing


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _pacing(clock: Clock, **kwargs: float) -> Pacing:
    options: dict[str, float] = {"busy_interval": 0.05, "busy_rows": 8.0, "probe_seconds": 2.0}
    options.update(kwargs)
    return Pacing(clock=clock, **options)


def _busy(pacing: Pacing) -> None:
    for _ in range(20):
        pacing.after(50)
    assert pacing.busy


def test_small_batches_are_relayed_at_once() -> None:
    pacing = _pacing(Clock())
    assert [pacing.after(rows) for rows in [1, 3, 2, 7, 1, 4] * 10] == [0.0] * 60
    assert not pacing.busy


def test_a_few_large_batches_in_a_row_space_the_next_ones() -> None:
    pacing = _pacing(Clock())
    waits = [pacing.after(10) for _ in range(8)]
    # The average of 10-row batches (weight 0.25 for the newest) reaches 8 at the sixth.
    assert waits == [0.0] * 5 + [0.05] * 3
    assert pacing.busy


def test_one_large_batch_among_small_ones_does_not() -> None:
    pacing = _pacing(Clock())
    assert [pacing.after(rows) for rows in [2, 2, 20, 2, 2, 2]] == [0.0] * 6
    assert not pacing.busy


def test_a_busy_relay_probes_and_turns_eager_when_the_load_is_gone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    pacing = _pacing(clock)
    _busy(pacing)
    clock.now += 1.9
    assert pacing.after(3) == 0.05  # busy batches are large or small: no probe before 2 s
    clock.now += 0.2
    assert pacing.after(40) == 0.0  # time to probe: the next batch starts at once
    with caplog.at_level(logging.INFO, logger="outbox.pacing"):
        assert pacing.after(2) == 0.0  # what came in meanwhile: 2 rows
    assert not pacing.busy
    assert "relaying at once again" in caplog.text
    assert pacing.after(3) == 0.0


def test_a_busy_relay_whose_probe_is_large_stays_busy_until_the_next_probe() -> None:
    clock = Clock()
    pacing = _pacing(clock)
    _busy(pacing)
    clock.now += 2.0
    assert pacing.after(40) == 0.0
    assert pacing.after(9) == 0.05  # still 9 rows after a back-to-back batch: busy
    assert pacing.busy
    clock.now += 1.8
    assert pacing.after(40) == 0.05
    clock.now += 0.3
    assert pacing.after(40) == 0.0  # the next probe, 2 s after the last


def test_the_minimum_interval_holds_in_both_modes() -> None:
    clock = Clock()
    pacing = _pacing(clock, min_interval=0.02)
    assert pacing.after(1) == 0.02
    _busy(pacing)
    assert pacing.after(50) == 0.05
    clock.now += 2.0
    assert pacing.after(50) == 0.02  # a probe waits the minimum still


def test_a_zero_busy_interval_turns_it_off() -> None:
    pacing = _pacing(Clock(), busy_interval=0.0, min_interval=0.01)
    assert {pacing.after(500) for _ in range(50)} == {0.01}
    assert not pacing.busy


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"busy_interval": -1.0}, "negative"),
        ({"min_interval": -0.1}, "negative"),
        ({"busy_rows": 0.5}, "busy_rows"),
        ({"smoothing": 0.0}, "smoothing"),
    ],
)
def test_nonsense_is_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Pacing(**options)  # type: ignore[arg-type]
