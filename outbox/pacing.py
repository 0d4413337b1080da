"""How long the relay leader leaves between the batches it relays.

Relaying at once keeps the first hop fast, but every batch costs the same fixed work however
few rows it carries: the relay's statement and commit, and downstream a read, a transaction and
an acknowledgement in every consumer it wakes. When the machine has cores to spare that is the
right trade. When it has none, the relay is already slow: a batch gathers what was committed
while the previous one ran, so its rows grow with the load. Waiting somewhat longer between
batches then costs little latency in proportion and frees CPU for everything else, because all
the consumers downstream read and commit in larger batches too.

``Pacing`` tells the two apart by the batches themselves. Relaying at once (*eager*), it keeps a
moving average of the rows per batch; once that reaches ``busy_rows`` it turns *busy* and starts
batches ``busy_interval`` apart. A busy relay's batches are large because it waits, so their
size no longer says whether waiting is still needed: every ``probe_seconds`` it starts the next
batch as soon as one ends. That batch holds only what was committed while the previous one ran,
as an eager batch would; if it is smaller than ``busy_rows`` the relay turns eager again.

``min_interval`` applies in both modes: a fixed floor for deployments that want it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import monotonic

log = logging.getLogger(__name__)

# Weight of the newest batch in the eager average: a few batches in a row must be large.
SMOOTHING = 0.25
PROBE_SECONDS = 2.0


class Pacing:
    """Not thread-safe: one per relay loop. ``after(rows)`` is called after each batch that
    found work and returns how long after that batch began the next may begin."""

    def __init__(
        self,
        *,
        min_interval: float = 0.0,
        busy_interval: float = 0.05,
        busy_rows: float = 8.0,
        smoothing: float = SMOOTHING,
        probe_seconds: float = PROBE_SECONDS,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        if min_interval < 0 or busy_interval < 0:
            raise ValueError(
                "relay intervals cannot be negative: check HAENGBOK_RELAY_MIN_INTERVAL_SECONDS "
                "and HAENGBOK_RELAY_BUSY_INTERVAL_SECONDS"
            )
        if busy_rows < 1:
            raise ValueError("busy_rows (HAENGBOK_RELAY_BUSY_ROWS) must be at least 1")
        if not 0 < smoothing <= 1:
            raise ValueError("smoothing must be in (0, 1]")
        self._min = min_interval
        self._busy_interval = busy_interval
        self._busy_rows = busy_rows
        self._smoothing = smoothing
        self._probe_seconds = probe_seconds
        self._clock = clock
        self.average = 0.0
        self.busy = False
        self._next_probe = 0.0
        self._probing = False  # the batch now running began right after the previous one

    def after(self, rows: int) -> float:
        if self._busy_interval <= 0:
            return self._min
        if self._probing:
            self._probing = False
            if rows < self._busy_rows:
                self._turn_eager(rows)
                return self._min
            self._next_probe = self._clock() + self._probe_seconds
        elif not self.busy:
            self.average += self._smoothing * (rows - self.average)
            if self.average < self._busy_rows:
                return self._min
            self._turn_busy()
        elif self._clock() >= self._next_probe:
            self._probing = True
            return self._min
        return max(self._min, self._busy_interval)

    def _turn_busy(self) -> None:
        self.busy = True
        self._next_probe = self._clock() + self._probe_seconds
        log.info(
            "relay batches average %.1f rows: batches now start %.0f ms apart",
            self.average,
            self._busy_interval * 1000,
        )

    def _turn_eager(self, rows: int) -> None:
        self.busy = False
        self.average = float(rows)
        log.info("a batch relayed right after another held %d rows: relaying at once again", rows)
