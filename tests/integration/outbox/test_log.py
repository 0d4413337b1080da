"""Appending to the log: stream versions continue, concurrent writers of a stream conflict.

Both statements are covered: one message (a scalar INSERT) and several (the array form)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import psycopg
import pytest

from outbox.envelope import MessageContext, NewMessage
from outbox.log import (
    ConcurrencyConflict,
    StaleRead,
    append,
    append_after_write_async,
    append_each,
)
from tests.waiting import wait_until

CTX = MessageContext.new(actor="tester")


def _msg(stream: str, n: int) -> NewMessage:
    return NewMessage("test.Happened", stream, {"n": n})


@pytest.mark.parametrize("batch", [1, 3])
def test_versions_continue_the_stream_and_context_is_stamped(database_url: str, batch: int) -> None:
    with psycopg.connect(database_url) as conn:
        first = append(conn, [_msg("s-1", i) for i in range(batch)], CTX)
        second = append(conn, [_msg("s-1", i) for i in range(batch)], CTX)
        other = append(conn, [_msg("s-2", 0)], CTX)
        conn.commit()
        assert [a.version for a in first + second] == list(range(1, 2 * batch + 1))
        assert [a.version for a in other] == [1]
        positions = [a.position for a in first + second]
        assert positions == sorted(positions)
        rows = conn.execute(
            "SELECT event_id, correlation_id, actor, payload FROM outbox.event"
            " WHERE stream = 's-1' ORDER BY version"
        ).fetchall()
    assert [r[0] for r in rows] == [a.event_id for a in first + second]
    assert {(r[1], r[2]) for r in rows} == {(CTX.correlation_id, "tester")}
    assert [r[3]["n"] for r in rows] == [i for _ in range(2) for i in range(batch)]


@pytest.mark.parametrize("how", ["append one", "append two", "append_each"])
def test_a_concurrent_append_to_the_same_stream_conflicts(database_url: str, how: str) -> None:
    outcome: list[Any] = []
    with psycopg.connect(database_url) as first, psycopg.connect(database_url) as second:
        append(first, [_msg("race", 0)], CTX)  # version 1, not committed yet

        def racer() -> None:
            try:
                if how == "append_each":
                    append_each(second, [(_msg("race", 1), CTX), (_msg("other", 2), CTX)])
                else:
                    append(second, [_msg("race", i) for i in range(how.count("two") + 1)], CTX)
                outcome.append("appended")
            except ConcurrencyConflict as exc:
                outcome.append(exc)
            second.rollback()

        thread = threading.Thread(target=racer)
        thread.start()
        # The racer also computed version 1 and waits on the unique index for our commit.
        with psycopg.connect(database_url, autocommit=True) as watcher:
            wait_until(
                lambda: (
                    watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    ).fetchone()
                    == (1,)
                ),
                message="the second writer never waited for the first",
            )
        first.commit()
        thread.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], ConcurrencyConflict)


class TestAppendEach:
    def test_each_row_keeps_its_own_context_in_the_order_given(self, database_url: str) -> None:
        a, b = MessageContext.new(actor="alice"), MessageContext(uuid.uuid4(), None, None)
        with psycopg.connect(database_url) as conn:
            append(conn, [_msg("s-1", 0)], CTX)  # s-1 already has version 1
            items = [(_msg("s-1", 1), a), (_msg("s-2", 2), b), (_msg("s-1", 3), b)]
            appended = append_each(conn, items)
            conn.commit()
            rows = conn.execute(
                "SELECT event_id, stream, version, correlation_id, causation_id, actor, payload"
                " FROM outbox.event WHERE position = ANY(%s) ORDER BY position",
                [[x.position for x in appended]],
            ).fetchall()
        assert [(x.stream, x.version) for x in appended] == [("s-1", 2), ("s-2", 1), ("s-1", 3)]
        assert [r[0] for r in rows] == [m.event_id for m, _ in items]
        assert [(r[3], r[4], r[5]) for r in rows] == [
            (a.correlation_id, a.causation_id, "alice"),
            (b.correlation_id, None, None),
            (b.correlation_id, None, None),
        ]
        assert [r[6] for r in rows] == [{"n": 1}, {"n": 2}, {"n": 3}]

    def test_nothing_to_append_is_no_statement(self, database_url: str) -> None:
        with psycopg.connect(database_url) as conn:
            assert append_each(conn, []) == []


class TestAppendAfterWrite:
    """A state change and its events in one statement: both or neither, with no transaction
    around them (an autocommit connection, as the API's pool hands out)."""

    WRITE = "INSERT INTO aaw_test.thing (id, label) VALUES (%(thing_id)s, %(label)s)"

    @pytest.fixture(autouse=True)
    def table(self, database_url: str) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA aaw_test")
            conn.execute("CREATE TABLE aaw_test.thing (id int PRIMARY KEY, label text NOT NULL)")

    def _run(self, url: str, thing_id: int, messages: list[NewMessage]) -> list[Any]:
        async def go() -> list[Any]:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                write = (self.WRITE, {"thing_id": thing_id, "label": f"thing {thing_id}"})
                return await append_after_write_async(conn, write, messages, CTX)

        return asyncio.run(go())

    def _state(self, url: str) -> tuple[list[Any], list[Any]]:
        with psycopg.connect(url) as conn:
            things = conn.execute("SELECT id FROM aaw_test.thing ORDER BY id").fetchall()
            events = conn.execute(
                "SELECT stream, version FROM outbox.event ORDER BY position"
            ).fetchall()
        return [r[0] for r in things], [tuple(r) for r in events]

    @pytest.mark.parametrize("batch", [1, 3])
    def test_the_write_and_the_events_commit_together(self, database_url: str, batch: int) -> None:
        appended = self._run(database_url, 1, [_msg("aaw-1", i) for i in range(batch)])

        assert [a.version for a in appended] == list(range(1, batch + 1))
        things, events = self._state(database_url)
        assert things == [1]
        assert events == [("aaw-1", v) for v in range(1, batch + 1)]

    def test_a_failing_write_appends_nothing(self, database_url: str) -> None:
        self._run(database_url, 1, [_msg("aaw-1", 0)])

        with pytest.raises(psycopg.errors.UniqueViolation):
            self._run(database_url, 1, [_msg("aaw-2", 0)])  # the same id again

        assert self._state(database_url) == ([1], [("aaw-1", 1)])

    def test_a_failing_append_leaves_the_write_undone(self, database_url: str) -> None:
        taken = _msg("aaw-1", 0)
        self._run(database_url, 1, [taken])
        again = NewMessage(taken.type, "aaw-other", {"n": 1}, event_id=taken.event_id)

        with pytest.raises(psycopg.errors.UniqueViolation):
            self._run(database_url, 2, [again])  # the event id is taken

        assert self._state(database_url) == ([1], [("aaw-1", 1)])

    def _run_expecting(self, url: str, holds: bool) -> list[Any]:
        # A write under outbox.expect, given whether its condition holds (a real write would
        # compare what it read with the row as it is now).
        write_sql = (
            "INSERT INTO aaw_test.thing (id, label) SELECT %(thing_id)s, %(label)s "
            "WHERE outbox.expect(%(holds)s, 'the thing was changed meanwhile')"
        )

        async def go() -> list[Any]:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                write = (write_sql, {"thing_id": 7, "label": "seven", "holds": holds})
                return await append_after_write_async(conn, write, [_msg("aaw-7", 0)], CTX)

        return asyncio.run(go())

    def test_a_write_whose_expectation_holds_commits_with_its_events(
        self, database_url: str
    ) -> None:
        appended = self._run_expecting(database_url, holds=True)

        assert [a.stream for a in appended] == ["aaw-7"]
        assert self._state(database_url) == ([7], [("aaw-7", 1)])

    def test_a_stale_read_writes_and_appends_nothing(self, database_url: str) -> None:
        with pytest.raises(StaleRead, match="the thing was changed meanwhile") as raised:
            self._run_expecting(database_url, holds=False)

        assert isinstance(raised.value, ConcurrencyConflict)  # retried and answered as one
        assert self._state(database_url) == ([], [])

    def test_parameters_clashing_with_the_appends_are_refused(self, database_url: str) -> None:
        async def go() -> None:
            async with await psycopg.AsyncConnection.connect(database_url) as conn:
                write = ("DELETE FROM aaw_test.thing WHERE id = %(stream)s", {"stream": 1})
                await append_after_write_async(conn, write, [_msg("aaw-1", 0)], CTX)

        with pytest.raises(ValueError, match=r"\['stream'\] clash"):
            asyncio.run(go())
