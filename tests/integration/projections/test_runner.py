"""The runner loop: woken by the relay, polling when not, surviving lost connections."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from outbox.envelope import Envelope
from projections.runner import ProjectionRunner
from projections.runtime import WAKEUP_CHANNEL
from tests.integration.projections.support import (
    append_events,
    checkpoint,
    create_live_table,
    head,
    listening,
    relay_positions,
    rows,
    running,
)
from tests.integration.projections.timeline import (
    ITEM_ADDED,
    OPENED,
    CartTimeline,
    PoisonedCartTimeline,
)
from tests.waiting import wait_until


def _caught_up(url: str, name: str) -> bool:
    return checkpoint(url, name) == head(url)


class TestWakingUp:
    def test_the_relays_notification_wakes_an_idle_runner(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        with running(database_url, [timeline], poll_interval=30):
            wait_until(lambda: listening(database_url, WAKEUP_CHANNEL) == 1)
            append_events(database_url, "cart-1", OPENED, ITEM_ADDED)
            relay_positions(database_url)
            # Far sooner than the 30 s poll: only the NOTIFY can have woken it.
            wait_until(lambda: checkpoint(database_url, timeline.name) == 2, timeout=5)

    def test_polling_catches_up_without_a_notification(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        with running(database_url, [timeline], poll_interval=0.1):
            wait_until(lambda: listening(database_url, WAKEUP_CHANNEL) == 1)
            append_events(database_url, "cart-1", OPENED)
            with psycopg.connect(database_url) as conn, conn.transaction():
                # Positions assigned, but no wake-up sent.
                conn.execute("SELECT pg_advisory_xact_lock(7424651002)")
                conn.execute("UPDATE outbox.event SET global_position = position")
            wait_until(lambda: _caught_up(database_url, timeline.name), timeout=5)


class TestSurvivingFailures:
    def test_keeps_projecting_after_its_connections_are_killed(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        with running(database_url, [timeline], poll_interval=0.2) as thread:
            append_events(database_url, "cart-1", OPENED)
            relay_positions(database_url)
            wait_until(lambda: _caught_up(database_url, timeline.name))
            wait_until(lambda: listening(database_url, WAKEUP_CHANNEL) == 1)

            with psycopg.connect(database_url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            append_events(database_url, "cart-1", ITEM_ADDED, ITEM_ADDED)
            relay_positions(database_url)

            wait_until(lambda: checkpoint(database_url, timeline.name) == 3)
            assert thread.is_alive()
        assert rows(database_url, timeline.table)[0][2] == 2

    def test_a_failing_projector_does_not_hold_up_the_others(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        poisoned = PoisonedCartTimeline()
        create_live_table(database_url, poisoned)
        append_events(database_url, "cart-ok", OPENED)
        relay_positions(database_url)
        append_events(database_url, "cart-bad", OPENED, payload={"poison": True})
        append_events(database_url, "cart-ok", ITEM_ADDED)
        relay_positions(database_url)

        with running(database_url, [poisoned, timeline], poll_interval=0.1):
            wait_until(lambda: _caught_up(database_url, timeline.name))
        # Its one batch held the poisoned event: it stays put, visible in its lag.
        assert checkpoint(database_url, poisoned.name) == 0

    def test_a_failing_projector_backs_off_and_logs_its_traceback_once(
        self, database_url: str, timeline: CartTimeline, caplog: pytest.LogCaptureFixture
    ) -> None:
        # An event it cannot apply fails the same way on every try: two workers had logged
        # hundreds of tracebacks a minute, retrying every poll.
        poisoned = PoisonedCartTimeline()
        create_live_table(database_url, poisoned)
        append_events(database_url, "cart-bad", OPENED, payload={"poison": True})
        relay_positions(database_url)
        caplog.set_level("WARNING", logger="projections.runner")

        def failures() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "poisoned_timeline" in r.getMessage()
                    and "retrying in" in r.getMessage()]  # fmt: skip

        with running(database_url, [poisoned, timeline], poll_interval=0.1):
            wait_until(lambda: len(failures()) >= 3, timeout=15)
        first, second, third = failures()[:3]
        assert first.exc_info is not None and "failed to apply a batch" in first.getMessage()
        assert second.exc_info is None and "still fails" in second.getMessage()
        delays = [float(r.getMessage().rsplit("retrying in ", 1)[1].rstrip("s")) for r in
                  (first, second, third)]  # fmt: skip
        assert delays == [0.1, 0.2, 0.4]

    def test_a_read_model_locked_by_someone_else_holds_up_only_its_own_projection(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        # Someone holds a lock on one read model's table (a long report, a manual fix). The
        # shared round gives up on it after the lock timeout; the other projection goes on.
        blocked = PoisonedCartTimeline()
        create_live_table(database_url, blocked)
        append_events(database_url, "cart-1", OPENED)
        relay_positions(database_url)
        with psycopg.connect(database_url) as locker:
            locker.execute("LOCK TABLE public.poisoned_timeline IN ACCESS EXCLUSIVE MODE")
            try:
                with running(
                    database_url, [blocked, timeline], poll_interval=0.1, lock_timeout_seconds=0.3
                ):
                    wait_until(lambda: _caught_up(database_url, timeline.name), timeout=15)
                    assert checkpoint(database_url, blocked.name) == 0
                    locker.rollback()  # the lock is gone: the blocked one catches up too
                    wait_until(lambda: _caught_up(database_url, blocked.name), timeout=15)
            finally:
                locker.rollback()

    def test_a_runner_stopped_inside_a_round_loses_its_session_and_its_locks(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        # What SIGSTOP does to a leader mid-round, here a transaction left open on the runner's
        # own connection: the server ends the session, so its projection locks are free again.
        runner = ProjectionRunner(
            lambda: psycopg.connect(database_url), [timeline], idle_in_transaction_seconds=0.5
        )
        conn = runner._work_connection()
        conn.execute("SELECT pg_advisory_xact_lock(1)")  # a round's locks, then nothing
        pid = conn.info.backend_pid

        def session_gone() -> bool:
            with psycopg.connect(database_url) as probe:
                row = probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]
                ).fetchone()
            return row == (0,)

        wait_until(session_gone, timeout=15, message="the server ends the stopped session")
        runner._close()


@dataclass(frozen=True)
class _CountingTimeline(CartTimeline):
    """The example projector, recording how many events each of its batches carried."""

    batches: list[int] = field(default_factory=list, compare=False, hash=False)

    def apply(self, conn: Any, envelopes: Sequence[Envelope], table: Any) -> None:
        self.batches.append(len(envelopes))
        super().apply(conn, envelopes, table)


class TestSharingRounds:
    def test_events_relayed_soon_after_a_round_share_the_next_one(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        counting = _CountingTimeline()
        with running(database_url, [counting], poll_interval=30, round_interval=1.0):
            wait_until(lambda: listening(database_url, WAKEUP_CHANNEL) == 1)
            append_events(database_url, "cart-1", OPENED)
            relay_positions(database_url)
            wait_until(lambda: checkpoint(database_url, counting.name) == 1, timeout=5)
            for _ in range(3):  # three relay batches, each with its wake-up
                append_events(database_url, "cart-1", ITEM_ADDED)
                relay_positions(database_url)
            wait_until(lambda: checkpoint(database_url, counting.name) == 4, timeout=5)
        assert counting.batches == [1, 3]


def _start(url: str, projector: CartTimeline) -> tuple[ProjectionRunner, Callable[[], None]]:
    stop = threading.Event()
    runner = ProjectionRunner(lambda: psycopg.connect(url), [projector], poll_interval=0.2)
    thread = threading.Thread(target=runner.run, args=(stop,), name="projection-runner")
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()

    return runner, halt


class TestStandby:
    def test_one_runner_leads_and_a_standby_takes_over_when_it_stops(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        first, halt_first = _start(database_url, timeline)
        wait_until(lambda: first.standby.leading)
        second, halt_second = _start(database_url, timeline)
        try:
            append_events(database_url, "cart-1", OPENED)
            relay_positions(database_url)
            wait_until(lambda: _caught_up(database_url, timeline.name))
            assert not second.standby.leading
            assert listening(database_url, WAKEUP_CHANNEL) == 1, "a standby does not LISTEN"

            halt_first()  # its connections close, and the lead with them
            wait_until(lambda: second.standby.leading, message="the standby takes the lead")
            wait_until(lambda: listening(database_url, WAKEUP_CHANNEL) == 1)
            append_events(database_url, "cart-1", ITEM_ADDED)
            relay_positions(database_url)
            wait_until(lambda: _caught_up(database_url, timeline.name))
        finally:
            halt_first()
            halt_second()
        assert rows(database_url, timeline.table)[0][2] == 1
