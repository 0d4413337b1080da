"""Catching up: checkpoint and rows commit together, once, whatever the order of arrival."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest

from projections.projector import Table
from projections.runtime import projection_lag, register, run_once, run_round
from sql import query
from tests.integration.projections.support import (
    append_events,
    checkpoint,
    create_live_table,
    head,
    relay_positions,
    rows,
)
from tests.integration.projections.timeline import (
    CLOSED,
    ITEM_ADDED,
    OPENED,
    UNHANDLED,
    CartTimeline,
    PoisonedCartTimeline,
)


def _catch_up(url: str, projector: CartTimeline, batch_size: int = 500) -> list[int]:
    with psycopg.connect(url) as conn:
        steps = []
        while (advanced := run_once(conn, projector, batch_size=batch_size)) > 0:
            steps.append(advanced)
        return steps


def _cart(prefix: str = "cart") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class TestCatchingUp:
    def test_projects_handled_events_and_moves_the_checkpoint_past_the_others(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        cart = _cart()
        append_events(database_url, cart, OPENED, UNHANDLED, ITEM_ADDED, ITEM_ADDED)
        append_events(database_url, _cart("price"), UNHANDLED)
        relay_positions(database_url)

        assert sum(_catch_up(database_url, timeline)) == 5

        assert rows(database_url, timeline.table) == [(cart, "open", 2, 3, 4, ITEM_ADDED, 4)]
        assert checkpoint(database_url, timeline.name) == head(database_url) == 5

    def test_events_without_a_global_position_wait_for_the_relay(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        cart = _cart()
        append_events(database_url, cart, OPENED)
        relay_positions(database_url)
        append_events(database_url, cart, ITEM_ADDED)

        _catch_up(database_url, timeline)
        assert rows(database_url, timeline.table)[0][2] == 0, "the unrelayed item is not seen"

        relay_positions(database_url)
        _catch_up(database_url, timeline)
        assert rows(database_url, timeline.table)[0][2] == 1
        assert checkpoint(database_url, timeline.name) == 2

    def test_batches_are_bounded_by_the_batch_size(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        append_events(database_url, _cart(), OPENED, *[ITEM_ADDED] * 4)
        relay_positions(database_url)
        assert _catch_up(database_url, timeline, batch_size=2) == [2, 2, 1]

    def test_a_long_stretch_of_unhandled_events_is_passed_in_bounded_steps(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        append_events(database_url, _cart("price"), *[UNHANDLED] * 45)
        cart = _cart()
        append_events(database_url, cart, OPENED)
        relay_positions(database_url)

        # A scan window of 20 batches of 2: 40 positions per transaction at most.
        assert _catch_up(database_url, timeline, batch_size=2) == [40, 6]
        assert [r[0] for r in rows(database_url, timeline.table)] == [cart]


class TestMissingRows:
    def test_events_whose_row_is_missing_create_it(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        # The carts were opened before this read model existed: only later events are seen.
        added, closed = _cart("added"), _cart("closed")
        append_events(database_url, added, UNHANDLED, ITEM_ADDED, payload={"qty": 3})
        append_events(database_url, closed, UNHANDLED, CLOSED)
        relay_positions(database_url)

        _catch_up(database_url, timeline)

        by_stream = {r[0]: r for r in rows(database_url, timeline.table)}
        assert by_stream[added][1:4] == ("open", 3, 1)
        assert by_stream[closed][1:4] == ("closed", 0, 1)


class TestCheckpointAtomicity:
    def test_a_failing_batch_writes_neither_rows_nor_checkpoint(self, database_url: str) -> None:
        poisoned = PoisonedCartTimeline()
        create_live_table(database_url, poisoned)
        good, bad = _cart("good"), _cart("bad")
        append_events(database_url, good, OPENED)
        relay_positions(database_url)
        _catch_up(database_url, poisoned)
        before = rows(database_url, poisoned.table)

        append_events(database_url, good, ITEM_ADDED)
        append_events(database_url, bad, OPENED, payload={"poison": True})
        relay_positions(database_url)
        with psycopg.connect(database_url) as conn, pytest.raises(RuntimeError, match="poisoned"):
            run_once(conn, poisoned)

        assert checkpoint(database_url, poisoned.name) == 1
        assert rows(database_url, poisoned.table) == before, "the good item was rolled back too"

    def test_run_once_refuses_a_connection_inside_a_transaction(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        with psycopg.connect(database_url) as conn:
            conn.execute("SELECT 1")
            with pytest.raises(ValueError, match="outside a transaction"):
                run_once(conn, timeline)


class TestOneRunnerPerProjection:
    def test_a_runner_skips_while_another_holds_the_projection(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        append_events(database_url, _cart(), OPENED)
        relay_positions(database_url)
        with psycopg.connect(database_url) as holder, holder.transaction():
            holder.execute(query("projection.try_lock"), {"name": timeline.name})
            assert _catch_up(database_url, timeline) == []
        assert _catch_up(database_url, timeline) == [1]

    def test_concurrent_runners_apply_each_event_once(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        carts = [_cart() for _ in range(8)]
        for cart in carts:
            append_events(database_url, cart, OPENED, *[ITEM_ADDED] * 24)
        relay_positions(database_url)
        total = head(database_url)
        advanced: list[list[int]] = [[], []]
        errors: list[BaseException] = []

        def runner(steps: list[int]) -> None:
            try:
                with psycopg.connect(database_url) as conn:
                    while checkpoint(database_url, timeline.name) != total:
                        steps.append(run_once(conn, timeline, batch_size=3))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=runner, args=(s,)) for s in advanced]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)

        assert errors == []
        assert sum(map(sum, advanced)) == total == 200
        assert all(any(s > 0 for s in steps) for steps in advanced), "both runners took turns"
        assert {r[3] for r in rows(database_url, timeline.table)} == {25}, "event_count per cart"


class TestLag:
    def test_reports_events_and_age_behind_the_head(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        append_events(database_url, _cart(), OPENED, *[ITEM_ADDED] * 4)
        relay_positions(database_url)
        with psycopg.connect(database_url, autocommit=True) as conn:
            register(conn, timeline)
            [fresh] = projection_lag(conn)
            run_once(conn, timeline, batch_size=2)
            [behind] = projection_lag(conn)
            _catch_up(database_url, timeline)
            [caught_up] = projection_lag(conn)

        assert fresh[:4] == (timeline.name, 0, 5, 5)
        assert behind[:4] == (timeline.name, 2, 5, 3)
        assert behind.lag_seconds > 0
        assert caught_up == (timeline.name, 5, 5, 0, 0.0)


def _opened_carts(url: str) -> CartTimeline:
    """A second projector, of one type only, with a table of its own."""
    projector = CartTimeline("opened_carts", Table("public", "opened_carts"), frozenset({OPENED}))
    create_live_table(url, projector)
    return projector


def _round(url: str, projectors: list[CartTimeline], batch_size: int = 500) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        with conn.transaction():
            for projector in projectors:
                register(conn, projector)
        return run_round(conn, projectors, batch_size=batch_size)


class TestSharedRound:
    def test_each_projection_gets_the_events_past_its_own_checkpoint_in_one_transaction(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        opened = _opened_carts(database_url)
        first, second, third = _cart(), _cart(), _cart()
        append_events(database_url, first, OPENED, ITEM_ADDED)
        append_events(database_url, second, OPENED, UNHANDLED)
        relay_positions(database_url)
        assert _catch_up(database_url, opened) == [4]  # ahead of the timeline
        append_events(database_url, third, OPENED)
        append_events(database_url, first, ITEM_ADDED)
        relay_positions(database_url)

        assert _round(database_url, [timeline, opened]) == {timeline.name: 6, opened.name: 2}

        assert checkpoint(database_url, timeline.name) == checkpoint(database_url, opened.name) == 6
        with psycopg.connect(database_url) as conn:
            writers = conn.execute(
                "SELECT count(DISTINCT xmin::text) FROM projection.checkpoint WHERE name = ANY(%s)",
                [[timeline.name, opened.name]],
            ).fetchone()
        assert writers == (1,), "both checkpoints were written by one transaction"
        # Nothing applied twice (event_count is not guarded), nothing missed.
        assert [(r[0], r[2], r[3]) for r in rows(database_url, opened.table)] == sorted(
            [(first, 0, 1), (second, 0, 1), (third, 0, 1)]
        )
        by_stream = {r[0]: (r[2], r[3]) for r in rows(database_url, timeline.table)}
        assert by_stream == {first: (2, 3), second: (0, 1), third: (0, 1)}

    def test_a_projection_another_runner_holds_is_left_to_it(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        opened = _opened_carts(database_url)
        append_events(database_url, _cart(), OPENED)
        relay_positions(database_url)
        with psycopg.connect(database_url) as holder, holder.transaction():
            holder.execute(query("projection.try_lock"), {"name": timeline.name})
            assert _round(database_url, [timeline, opened]) == {opened.name: 1}
        assert checkpoint(database_url, timeline.name) == 0

    def test_a_full_batch_moves_every_checkpoint_to_where_the_read_stopped(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        opened = _opened_carts(database_url)
        for _ in range(5):
            append_events(database_url, _cart(), OPENED, ITEM_ADDED)
        relay_positions(database_url)
        assert _round(database_url, [timeline, opened], batch_size=4) == {
            timeline.name: 4,
            opened.name: 4,
        }
        assert _round(database_url, [timeline, opened], batch_size=100) == {
            timeline.name: 6,
            opened.name: 6,
        }
        assert len(rows(database_url, opened.table)) == 5

    def test_a_failing_apply_rolls_the_whole_round_back(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        poisoned = PoisonedCartTimeline()
        create_live_table(database_url, poisoned)
        append_events(database_url, _cart("good"), OPENED)
        append_events(database_url, _cart("bad"), OPENED, payload={"poison": True})
        relay_positions(database_url)
        with pytest.raises(RuntimeError, match="poisoned"):
            _round(database_url, [timeline, poisoned])
        assert checkpoint(database_url, timeline.name) == 0
        assert rows(database_url, timeline.table) == []
