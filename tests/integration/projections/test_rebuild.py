"""Rebuild: replaying the whole log gives the rows catching up gave, without a read outage."""

from __future__ import annotations

import random
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from projections.projector import Table
from projections.rebuild import rebuild
from projections.runtime import run_once
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
)


def _catch_up(url: str, projector: CartTimeline) -> None:
    with psycopg.connect(url) as conn:
        while run_once(conn, projector, batch_size=50):
            pass


def _shop_history(url: str, carts: int = 12) -> None:
    """Interleaved carts, some seen only from their middle, with unhandled events between."""
    rng = random.Random(7)
    for i in range(carts):
        cart = f"cart-{uuid.uuid4().hex[:8]}"
        opening = [OPENED] if i % 3 else [UNHANDLED]
        closing = [CLOSED] if i % 2 else []
        adds = [ITEM_ADDED] * rng.randint(0, 6)
        append_events(url, cart, *opening, *adds, UNHANDLED, *closing, payload={"qty": i % 4 + 1})
    relay_positions(url)


def _connect(url: str) -> Any:
    return lambda: psycopg.connect(url)


def _leftover_rebuild_tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE '%\\_rebuild\\_%' AND relkind = 'r'"
        ).fetchall()
    return [r[0] for r in found]


class TestRebuildEqualsCatchingUp:
    def test_rebuilt_rows_equal_the_incrementally_built_rows(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        _shop_history(database_url)
        _catch_up(database_url, timeline)
        incremental = rows(database_url, timeline.table)
        progress: list[tuple[int, int]] = []

        position = rebuild(
            _connect(database_url),
            timeline,
            batch_size=7,
            on_progress=lambda done, total: progress.append((done, total)),
        )

        assert rows(database_url, timeline.table) == incremental
        assert len(incremental) == 12
        assert position == checkpoint(database_url, timeline.name) == head(database_url)
        assert len(progress) > 3, "replayed in several batches"
        assert [d for d, _ in progress] == sorted(d for d, _ in progress)
        assert progress[-1] == (position, position)
        assert _leftover_rebuild_tables(database_url) == []

    def test_live_table_serves_reads_and_catches_up_during_the_replay(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        _shop_history(database_url)
        _catch_up(database_url, timeline)
        served: list[int] = []
        tail_from: list[int] = []

        def meanwhile(done: int, total: int) -> None:
            if not served:
                # A reader that would fail rather than wait on a lock the rebuild might hold.
                with psycopg.connect(database_url) as reader:
                    reader.execute("SET lock_timeout = '200ms'")
                    count = sql.SQL("SELECT count(*) FROM {}").format(timeline.table.identifier)
                    served.append(reader.execute(count).fetchone()[0])  # type: ignore[index]
                # New events arrive and the runner projects them into the live table meanwhile.
                append_events(database_url, "cart-late", OPENED, ITEM_ADDED)
                relay_positions(database_url)
                _catch_up(database_url, timeline)
            elif total - done <= 5 and not tail_from:
                # The replay's last batch: what arrives now only the swap's tail catch-up sees.
                tail_from.append(done)
                append_events(database_url, "cart-tail", OPENED, ITEM_ADDED, ITEM_ADDED)
                relay_positions(database_url)

        position = rebuild(_connect(database_url), timeline, batch_size=5, on_progress=meanwhile)

        assert served == [12]
        reference = CartTimeline(name="cart_reference", table=Table("public", "cart_reference"))
        create_live_table(database_url, reference)
        _catch_up(database_url, reference)
        rebuilt = rows(database_url, timeline.table)
        assert rebuilt == rows(database_url, reference.table)
        assert {"cart-late", "cart-tail"} <= {r[0] for r in rebuilt}
        assert position == checkpoint(database_url, timeline.name) == head(database_url)
        assert position >= tail_from[0] + 3, "the swap caught up the tail"


class TestSwap:
    def test_keeps_constraint_and_index_names_and_grants(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        role = f"reader_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
            conn.execute(
                sql.SQL("GRANT SELECT ON {} TO {}").format(
                    timeline.table.identifier, sql.Identifier(role)
                )
            )
            try:
                before = _names(conn)
                _shop_history(database_url, carts=3)
                rebuild(_connect(database_url), timeline)
                after = _names(conn)
                can_read = conn.execute(
                    "SELECT has_table_privilege(%s, 'public.cart_timeline', 'SELECT')", [role]
                ).fetchone()
            finally:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        assert after == before
        assert "cart_timeline_pkey" in before and "cart_timeline_status_idx" in before
        assert can_read == (True,)

    def test_a_swap_that_cannot_lock_leaves_the_live_table_as_it_was(
        self, database_url: str, timeline: CartTimeline
    ) -> None:
        _shop_history(database_url, carts=3)
        _catch_up(database_url, timeline)
        before = rows(database_url, timeline.table)
        with psycopg.connect(database_url) as reader, reader.transaction():
            # A long read holds ACCESS SHARE, so the swap's exclusive lock times out.
            reader.execute(sql.SQL("SELECT 1 FROM {}").format(timeline.table.identifier))
            with pytest.raises(psycopg.errors.LockNotAvailable):
                rebuild(_connect(database_url), timeline, lock_timeout=0.2)

        assert rows(database_url, timeline.table) == before
        assert checkpoint(database_url, timeline.name) == head(database_url)
        assert _leftover_rebuild_tables(database_url) == []


def _names(conn: psycopg.Connection[Any]) -> set[str]:
    found = conn.execute(
        """
        SELECT conname FROM pg_constraint WHERE conrelid = 'public.cart_timeline'::regclass
        UNION SELECT indexrelid::regclass::text FROM pg_index
        WHERE indrelid = 'public.cart_timeline'::regclass
        """
    ).fetchall()
    return {r[0] for r in found}
