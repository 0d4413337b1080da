"""A long-running loop that keeps a set of projections caught up (one thread, two connections)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from outbox import standby
from outbox.standby import Standby
from projections.projector import Projector, check_projector
from projections.runtime import (
    DEFAULT_BATCH_SIZE,
    WAKEUP_CHANNEL,
    register,
    run_once,
    run_round_at,
)

log = logging.getLogger(__name__)

# How long ``run`` may take to notice its stop event while waiting for work.
_STOP_CHECK = 0.5
#: Seconds between the starts of rounds that caught up (see ProjectionRunner).
DEFAULT_ROUND_INTERVAL = 0.05

ConnectionFactory = Callable[[], psycopg.Connection[Any]]


# A read model's table locked by someone else (a long report, a manual fix) blocks only its own
# projection after this long; a runner stopped inside a round loses its session after this
# long, and with it the locks a standby needs. A lock held for seconds stalled every read model
# for as long, and a stopped leader all of them until it was killed.
DEFAULT_LOCK_TIMEOUT_SECONDS = 5.0
DEFAULT_IDLE_IN_TRANSACTION_SECONDS = 15.0
# Longest wait before a failing projector is tried again.
MAX_RETRY_SECONDS = 30.0


class ProjectionRunner:
    """Runs every projector's batches round-robin; sleeps on LISTEN when all are caught up.

    The relay NOTIFYs ``haengbok_projection_wakeup`` after assigning global positions, but a
    notification is only a hint: it is lost if the listening connection dies, so the runner
    also polls every ``poll_interval`` seconds and survives losing either connection.
    Several runners (threads or processes) may run the same projectors: one leads
    (``outbox.standby``) and LISTENs, the others run a round per poll only; the per-projection
    advisory lock makes all but one skip each batch.

    Rounds that catch up start at most every ``round_interval`` seconds: events that arrive
    meanwhile join the next round instead of each relay batch getting a transaction of its own
    (at 25 reservations/s a round carried 1.6 events, and rounds were a third of all
    statements). A round that stops short of the head is followed at once.
    """

    def __init__(
        self,
        connect: ConnectionFactory,
        projectors: Sequence[Projector],
        *,
        poll_interval: float = 0.5,
        round_interval: float = DEFAULT_ROUND_INTERVAL,
        batch_size: int = DEFAULT_BATCH_SIZE,
        lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
        idle_in_transaction_seconds: float = DEFAULT_IDLE_IN_TRANSACTION_SECONDS,
    ) -> None:
        """``lock_timeout_seconds``: how long a round's statement waits for a lock on a read
        model's table before the round gives up (someone else holds it); the projections run
        alone then, so one blocked table holds up only its own. ``idle_in_transaction_seconds``:
        the server ends the session of a runner stopped inside a round (SIGSTOP, a partition),
        which frees the projections' locks for a standby to take; a round never idles that
        long between its statements."""
        if lock_timeout_seconds <= 0 or idle_in_transaction_seconds <= 0:
            raise ValueError("the projection runner's timeouts must be positive")
        self._session = {
            "lock_timeout": f"{int(lock_timeout_seconds * 1000)}ms",
            "idle_in_transaction_session_timeout": f"{int(idle_in_transaction_seconds * 1000)}ms",
        }
        for projector in projectors:
            check_projector(projector)
        self._connect = connect
        self._projectors = tuple(projectors)
        self._poll_interval = poll_interval
        self._round_interval = round_interval
        self.standby = Standby(standby.PROJECTIONS)
        self._batch_size = batch_size
        self._work: psycopg.Connection[Any] | None = None
        self._listen: psycopg.Connection[Any] | None = None
        self._listening = False
        self._retry_at: dict[str, float] = {}
        #: Consecutive failures of a projector and the last one's text (see ``_failed``).
        self._failures: dict[str, tuple[int, str]] = {}

    def run(self, stop: threading.Event) -> None:
        """Keep the projections caught up until ``stop`` is set (checked at least every poll)."""
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    if self.catch_up_round():
                        continue
                except psycopg.Error:
                    log.warning(
                        "projection runner lost its connection; reconnecting", exc_info=True
                    )
                    self._close()
                    stop.wait(self._poll_interval)
                    continue
                self._wait_for_work(stop)
                stop.wait(started + self._round_interval - time.monotonic())
        finally:
            self._close()

    def catch_up_round(self) -> bool:
        """One batch per projector, all in one transaction (``run_round``); true if more is
        waiting. If the shared round fails, each projector runs alone, so a failing one holds
        up nobody else."""
        conn = self._work_connection()
        now = time.monotonic()
        ready = [p for p in self._projectors if self._retry_at.get(p.name, 0.0) <= now]
        if not ready:
            return False
        try:
            more = run_round_at(conn, ready, batch_size=self._batch_size).more
        except Exception:
            if conn.broken or conn.closed:
                raise
            log.warning("a projection failed in the shared round; running each alone")
            return self._one_by_one(conn, ready)
        for projector in ready:
            self._failures.pop(projector.name, None)
        return more

    def _one_by_one(self, conn: psycopg.Connection[Any], projectors: list[Projector]) -> bool:
        busy = False
        for projector in projectors:
            try:
                busy |= run_once(conn, projector, batch_size=self._batch_size) > 0
            except Exception as exc:
                if conn.broken or conn.closed:
                    raise
                self._failed(projector.name, exc)
            else:
                self._failures.pop(projector.name, None)
        return busy

    def _failed(self, name: str, exc: Exception) -> None:
        """A failing projector stays where it is (its lag and the age of its oldest unapplied
        event show it; ``haengbok status`` names it) and is retried after a back-off that
        doubles up to ``MAX_RETRY_SECONDS``, not on every round the others keep busy. The
        traceback is logged when the error is new; a repeat of it is one line (an event it
        cannot apply had filled the log with hundreds of tracebacks a minute)."""
        count, last = self._failures.get(name, (0, ""))
        text = f"{type(exc).__name__}: {exc}"
        delay = min(self._poll_interval * 2**count, MAX_RETRY_SECONDS)
        self._failures[name] = (count + 1, text)
        self._retry_at[name] = time.monotonic() + delay
        if text != last:
            log.exception("projection %s failed to apply a batch; retrying in %.1fs", name, delay)
        else:
            log.warning(
                "projection %s still fails (%s), %d times in a row; retrying in %.1fs",
                name, text, count + 1, delay,
            )  # fmt: skip

    def _work_connection(self) -> psycopg.Connection[Any]:
        if self._work is None or self._work.closed:
            self._work = self._connect()
            with self._work.transaction():
                for name, value in self._session.items():
                    self._work.execute("SELECT set_config(%s, %s, false)", [name, value])
                for projector in self._projectors:
                    register(self._work, projector)
        return self._work

    def _wait_for_work(self, stop: threading.Event) -> None:
        # Waits in short slices so that setting ``stop`` is noticed even with a long poll.
        deadline = time.monotonic() + self._poll_interval
        try:
            listen = self._listen_connection()
            if not self.standby.try_lead(listen):
                stop.wait(self._poll_interval)  # a standby: no LISTEN, a round per poll
                return
            if not self._listening:
                listen.execute(sql.SQL("LISTEN {}").format(sql.Identifier(WAKEUP_CHANNEL)))
                self._listening = True
                log.info("this process's projection runner leads")
            while not stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
                woken = list(listen.notifies(timeout=min(remaining, _STOP_CHECK), stop_after=1))
                if woken:
                    return
        except psycopg.OperationalError:
            log.warning("projection wake-up listener lost; polling until it reconnects")
            self._close_listener()
            stop.wait(max(0.0, deadline - time.monotonic()))

    def _listen_connection(self) -> psycopg.Connection[Any]:
        if self._listen is None or self._listen.closed:
            listen = self._connect()
            try:
                listen.autocommit = True
            except BaseException:
                listen.close()
                raise
            self._listen, self._listening = listen, False
        return self._listen

    def _close_listener(self) -> None:
        if self._listen is not None:
            self._listen.close()
            self._listen = None

    def _close(self) -> None:
        self._close_listener()
        if self._work is not None:
            self._work.close()
            self._work = None
