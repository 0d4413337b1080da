"""A circuit breaker whose state is shared by every process through a store.

CLOSED: calls go through; ``failure_threshold`` consecutive failures open it.
OPEN: calls fail fast (``CircuitOpen``) until ``next_attempt_at`` (opened_at + cool-down).
HALF_OPEN: one trial call goes through; its success closes the breaker, its failure opens it
again. While the trial runs, everyone else still fails fast; a trial that has not reported by
its own ``next_attempt_at`` (its process died) may be taken over by another caller.

Why a store: several worker processes call the provider, and the API (another process) must
know when the provider is down to refuse new work. Each process counts its own consecutive
failures, but state *changes* go through the store with a compare-and-set on ``version``, so
one process opens the circuit for all and exactly one caller in the cluster wins the trial.
The store is read at most every ``refresh_seconds`` and written only on state changes, never
on every call. If the store is unreachable the breaker keeps working on its local view.

Time comes from an injected clock (wall-clock, since it is compared across processes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclass(frozen=True, slots=True)
class BreakerRecord:
    """A breaker's shared state; ``version`` grows by one with every stored change."""

    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: datetime | None = None
    # OPEN: when the cool-down ends. HALF_OPEN: when the running trial counts as lost.
    next_attempt_at: datetime | None = None
    version: int = 0


class StoreUnavailable(Exception):
    """The store could not be read or written; the breaker falls back to its local view."""


class BreakerStore(Protocol):
    """Where breakers keep their shared state (``PostgresBreakerStore`` in production)."""

    def load(self, name: str) -> BreakerRecord:
        """The stored record (a CLOSED one, registered now, if there is none yet)."""
        ...

    def replace(self, name: str, expected_version: int, record: BreakerRecord) -> BreakerRecord:
        """Store ``record`` with version ``expected_version + 1`` if the stored version is still
        ``expected_version``; return what is stored afterwards (ours, or the one that won)."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class MemoryBreakerStore:
    """A store for one process (tests, or a single worker without a database)."""

    def __init__(self) -> None:
        self._records: dict[str, BreakerRecord] = {}
        self._lock = threading.Lock()
        self.writes = 0

    def load(self, name: str) -> BreakerRecord:
        with self._lock:
            return self._records.setdefault(name, BreakerRecord())

    def replace(self, name: str, expected_version: int, record: BreakerRecord) -> BreakerRecord:
        with self._lock:
            current = self._records.setdefault(name, BreakerRecord())
            if current.version == expected_version:
                self.writes += 1
                current = replace(record, version=expected_version + 1)
                self._records[name] = current
            return current


class CircuitOpen(Exception):
    """The call was not made: the breaker is open (or its trial call is running)."""

    def __init__(self, name: str, retry_after_seconds: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry in {retry_after_seconds:.1f}s")
        self.retry_after_seconds = retry_after_seconds


class CircuitBreaker:
    """Guards calls to one dependency; thread-safe, one instance per process and dependency."""

    def __init__(
        self,
        name: str,
        store: BreakerStore,
        *,
        clock: Clock | None = None,
        failure_threshold: int = 5,
        cool_down_seconds: float = 30.0,
        trial_timeout_seconds: float = 10.0,
        refresh_seconds: float = 1.0,
        failure_types: tuple[type[BaseException], ...] = (Exception,),
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.name = name
        self._store = store
        self._clock = clock or SystemClock()
        self._threshold = failure_threshold
        self._cool_down = timedelta(seconds=cool_down_seconds)
        # Longer than one call can take (connect + read timeout), or trials would overlap.
        self._trial_timeout = timedelta(seconds=trial_timeout_seconds)
        self._refresh = timedelta(seconds=refresh_seconds)
        self._failure_types = failure_types
        self._lock = threading.Lock()
        self._record = BreakerRecord()
        self._loaded_at: datetime | None = None
        self._failures = 0  # consecutive failures seen by this process

    @property
    def state(self) -> BreakerState:
        """This process's view of the state (at most ``refresh_seconds`` old)."""
        with self._lock:
            self._refresh_view(self._clock.now())
            return self._record.state

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` unless the circuit is open. Exceptions of ``failure_types`` count as
        failures and propagate; a return or another ``Exception`` is a success (the dependency
        answered). An interruption (``KeyboardInterrupt``, ``SystemExit``) tells nothing: a
        trial cut off that way is taken over by another caller after its timeout."""
        trial = self._admit()
        try:
            result = fn()
        except self._failure_types:
            self._on_failure(trial)
            raise
        except Exception:
            self._on_success(trial)
            raise
        self._on_success(trial)
        return result

    def _admit(self) -> bool:
        """Raise ``CircuitOpen`` or let the call through; True when it is the half-open trial."""
        with self._lock:
            now = self._clock.now()
            self._refresh_view(now)
            record = self._record
            if record.state is BreakerState.CLOSED:
                return False
            due = record.next_attempt_at or now
            if now < due:
                raise CircuitOpen(self.name, (due - now).total_seconds())
            # Cool-down over (or a trial lost): try to become the one trial of the cluster.
            trial = replace(
                record, state=BreakerState.HALF_OPEN, next_attempt_at=now + self._trial_timeout
            )
            if self._change(now, record, trial):
                log.info("circuit %s half-open: one trial call goes through", self.name)
                return True
            if self._record.state is BreakerState.CLOSED:
                return False  # another process's trial closed it meanwhile
            raise CircuitOpen(self.name, _seconds_until(self._record.next_attempt_at, now))

    def _on_success(self, trial: bool) -> None:
        with self._lock:
            self._failures = 0
            # Only the trial closes the circuit: other successes may be answers to calls that
            # started before it opened, and say nothing about the provider now.
            if trial and self._record.state is BreakerState.HALF_OPEN:
                closed = BreakerRecord(version=self._record.version)
                if self._change(self._clock.now(), self._record, closed):
                    log.info("circuit %s closed: the trial call succeeded", self.name)

    def _on_failure(self, trial: bool) -> None:
        with self._lock:
            record = self._record
            if trial:
                failures = record.failures + 1  # the outage goes on: keep counting
            elif record.state is BreakerState.CLOSED:
                self._failures += 1
                if self._failures < self._threshold:
                    return
                failures = self._failures
            else:
                return  # already open, or a trial decides: an old call's failure adds nothing
            now = self._clock.now()
            opened = BreakerRecord(
                state=BreakerState.OPEN,
                failures=failures,
                opened_at=now,
                next_attempt_at=now + self._cool_down,
                version=record.version,
            )
            if self._change(now, record, opened):
                log.warning(
                    "circuit %s open after %d failure(s); next attempt at %s",
                    self.name, failures, opened.next_attempt_at,
                )  # fmt: skip
            self._failures = 0  # open either way (ours or another's): count anew after it

    def _change(self, now: datetime, expected: BreakerRecord, new: BreakerRecord) -> bool:
        """Compare-and-set through the store; adopt whatever is stored afterwards and say
        whether it is our change."""
        mine = replace(new, version=expected.version + 1)
        try:
            stored = self._store.replace(self.name, expected.version, new)
        except StoreUnavailable as exc:
            # Better a breaker that protects this process than none at all.
            log.warning("circuit %s: store unavailable (%s); keeping state locally", self.name, exc)
            stored = mine
        self._record, self._loaded_at = stored, now
        return stored == mine

    def _refresh_view(self, now: datetime) -> None:
        if self._loaded_at is not None and now - self._loaded_at < self._refresh:
            return
        try:
            self._record = self._store.load(self.name)
        except StoreUnavailable as exc:
            log.warning("circuit %s: store unavailable (%s); using the local view", self.name, exc)
        # Also after a failure: a dead store is retried once per refresh, not on every call.
        self._loaded_at = now


def _seconds_until(moment: datetime | None, now: datetime) -> float:
    return 0.0 if moment is None else max(0.0, (moment - now).total_seconds())
