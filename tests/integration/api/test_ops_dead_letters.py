"""/ops/dead-letters: parked messages are listed with their error, a page at a time in id order,
and re-queued (with what waits behind them in their FIFO group) or discarded, through
outbox.parking."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.auth import Role
from haengbok.bootstrap import build_api
from haengbok.settings import Settings
from outbox.parking import list_parked
from outbox.sagas import command_stream
from tests.integration.api.support import assert_problem, bearer
from tests.integration.platform_state import add_saga, park_group, queue_rows, send

QUEUE = "dl_q"
OTHER = "dl_other_q"


@pytest.fixture
def ops_client(settings: Settings) -> Iterator[TestClient[Litestar]]:
    with TestClient(build_api(settings)) as test_client:
        yield test_client


@pytest.fixture
def ops(settings: Settings) -> dict[str, str]:
    return bearer(settings, Role.OPS, subject="operator")


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url) as conn:
        for queue in (QUEUE, OTHER):
            conn.execute("SELECT pgmq.create(%s)", (queue,))
        conn.commit()
        yield conn


def _parked_ids(db: psycopg.Connection) -> list[int]:
    ids = [p.id for p in list_parked(db)]
    db.commit()
    return ids


class TestList:
    def test_shows_error_read_count_group_times_and_a_summary(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        head, behind = park_group(db, QUEUE, "order-1", 2, "ValueError: card declined")

        response = ops_client.get("/ops/dead-letters", headers=ops)

        assert response.status_code == 200
        first, second = response.json()
        assert first["id"] == head
        assert (first["queue_name"], first["group_key"], first["read_ct"]) == (
            QUEUE,
            "order-1",
            1,
        )
        assert first["error"] == "ValueError: card declined"
        assert (first["actor"], first["message_type"]) == ("notes_actor", "notes.Step0")
        assert first["correlation_id"] == f"corr-{QUEUE}"
        assert first["enqueued_at"] and first["parked_at"]
        assert second["id"] == behind
        assert second["message_type"] == "notes.Step1"
        assert second["error"] == f"waiting behind parked message #{head}"

    def test_filters_by_queue(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        park_group(db, QUEUE, "a", 1, "boom")
        [other] = park_group(db, OTHER, "b", 1, "bang")

        response = ops_client.get("/ops/dead-letters", params={"queue": OTHER}, headers=ops)

        assert [d["id"] for d in response.json()] == [other]

    def test_a_message_without_an_envelope_has_no_type(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        db.execute(
            "INSERT INTO ops.parked_message (queue_name, msg_id, message, read_ct, error) "
            'VALUES (%s, 7, \'{"actor_name": "raw", "args": [42]}\', 3, \'boom\')',
            (QUEUE,),
        )
        db.commit()

        [letter] = ops_client.get("/ops/dead-letters", headers=ops).json()

        assert (letter["actor"], letter["message_type"], letter["group_key"]) == ("raw", None, None)


def _insert_parked(db: psycopg.Connection, queue: str, count: int) -> list[int]:
    """``count`` parked messages of ``queue`` straight into the table; their ids, ascending."""
    rows = db.execute(
        "INSERT INTO ops.parked_message (queue_name, msg_id, message, read_ct, error) "
        "SELECT %s, n, '{}', 5, 'boom' FROM generate_series(1, %s) AS n RETURNING id",
        (queue, count),
    ).fetchall()
    db.commit()
    return sorted(int(r[0]) for r in rows)


def _parked_table(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    rows = db.execute("SELECT * FROM ops.parked_message ORDER BY id").fetchall()
    db.commit()
    return rows


def _next_link(response: httpx.Response) -> str | None:
    """The target of the response's ``rel="next"`` link; None when it has none."""
    link = response.headers.get("link")
    if link is None:
        return None
    found = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert found, f"unexpected Link header {link!r}"
    return found.group(1)


def _walk(
    client: TestClient[Litestar], headers: dict[str, str], params: dict[str, Any]
) -> list[list[int]]:
    """Follow the next links from the first page to the last; the ids of each page."""
    pages: list[list[int]] = []
    response = client.get("/ops/dead-letters", params=params, headers=headers)
    while True:
        assert response.status_code == 200, response.text
        ids = [d["id"] for d in response.json()]
        pages.append(ids)
        target = _next_link(response)
        if target is None:
            assert "x-next-cursor" not in response.headers
            return pages
        assert response.headers["x-next-cursor"] == str(ids[-1])
        assert len(pages) < 50, "the next links never ended"
        response = client.get(target, headers=headers)


class TestPaging:
    def test_pages_walk_every_message_once_in_id_order(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        # Parked in an order that queue-and-group order would shuffle: ids decide the pages.
        ids = park_group(db, QUEUE, "b", 2, "boom")
        ids += park_group(db, OTHER, "a", 2, "bang")
        ids += park_group(db, QUEUE, "a", 1, "boom")

        pages = _walk(ops_client, ops, {"limit": 2})

        assert [len(p) for p in pages] == [2, 2, 1]
        assert [i for p in pages for i in p] == sorted(ids)

    def test_a_last_page_that_is_exactly_full_has_no_next_link(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        ids = _insert_parked(db, QUEUE, 4)

        pages = _walk(ops_client, ops, {"limit": 2})

        assert pages == [ids[:2], ids[2:]], "no empty third page"

    def test_the_next_link_keeps_the_queue_filter_and_the_limit(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        mine = []
        for _ in range(3):
            mine += _insert_parked(db, OTHER, 1)
            _insert_parked(db, QUEUE, 1)

        first = ops_client.get(
            "/ops/dead-letters", params={"queue": OTHER, "limit": 2}, headers=ops
        )

        target = _next_link(first)
        assert target is not None
        assert target.startswith("/ops/dead-letters?")
        query = httpx.URL(target).params
        assert (query["queue"], query["limit"], query["after"]) == (OTHER, "2", str(mine[1]))
        assert _walk(ops_client, ops, {"queue": OTHER, "limit": 2}) == [mine[:2], mine[2:]]

    def test_the_default_page_is_100_messages(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        ids = _insert_parked(db, QUEUE, 101)

        first = ops_client.get("/ops/dead-letters", headers=ops)

        assert [d["id"] for d in first.json()] == ids[:100]
        assert first.headers["x-next-cursor"] == str(ids[99])
        rest = ops_client.get("/ops/dead-letters", params={"after": ids[99]}, headers=ops)
        assert [d["id"] for d in rest.json()] == [ids[100]]
        assert _next_link(rest) is None

    def test_after_is_exclusive_and_past_the_end_is_an_empty_last_page(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        ids = _insert_parked(db, QUEUE, 3)

        rest = ops_client.get("/ops/dead-letters", params={"after": ids[0]}, headers=ops)
        past = ops_client.get("/ops/dead-letters", params={"after": ids[-1]}, headers=ops)

        assert [d["id"] for d in rest.json()] == ids[1:]
        assert past.status_code == 200
        assert past.json() == []
        assert _next_link(past) is None
        assert "x-next-cursor" not in past.headers
        largest = ops_client.get("/ops/dead-letters", params={"after": 2**63 - 1}, headers=ops)
        assert (largest.status_code, largest.json()) == (200, []), "the largest bigint is fine"

    def test_the_cursor_survives_its_message_being_discarded_or_new_ones_parked(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        ids = _insert_parked(db, QUEUE, 4)
        first = ops_client.get("/ops/dead-letters", params={"limit": 2}, headers=ops)
        target = _next_link(first)
        assert target is not None
        # The operator discards the message the cursor points at, and a new one is parked.
        assert ops_client.delete(f"/ops/dead-letters/{ids[1]}", headers=ops).status_code == 204
        [late] = _insert_parked(db, QUEUE, 1)

        second = ops_client.get(target, headers=ops)
        third_target = _next_link(second)
        assert third_target is not None
        third = ops_client.get(third_target, headers=ops)

        assert [d["id"] for d in second.json()] == ids[2:]
        assert [d["id"] for d in third.json()] == [late]
        assert _next_link(third) is None

    @pytest.mark.parametrize(
        "params",
        [
            {"limit": 0},
            {"limit": 1001},
            {"limit": -5},
            {"limit": "ten"},
            {"limit": "2.5"},
            {"after": -1},
            {"after": "abc"},
            {"after": "1.5"},
            {"after": str(2**63)},  # beyond bigint: refused, not a 500 from the database
        ],
    )
    def test_a_bad_limit_or_cursor_is_a_400_problem_and_changes_nothing(
        self,
        ops_client: TestClient[Litestar],
        ops: dict[str, str],
        db: psycopg.Connection,
        params: dict[str, object],
    ) -> None:
        _insert_parked(db, QUEUE, 2)
        before = _parked_table(db)

        response = ops_client.get("/ops/dead-letters", params=params, headers=ops)

        body = assert_problem(response, 400)
        assert body["type"].endswith("validation-error")
        [name] = params
        assert [(e["key"], e["source"]) for e in body["errors"]] == [(name, "query")]
        assert "link" not in response.headers
        assert _parked_table(db) == before

    def test_the_largest_page_is_1000_messages(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        ids = _insert_parked(db, QUEUE, 1001)

        response = ops_client.get("/ops/dead-letters", params={"limit": 1000}, headers=ops)

        assert [d["id"] for d in response.json()] == ids[:1000]
        assert response.headers["x-next-cursor"] == str(ids[999])

    def test_openapi_documents_the_paging_parameters_and_headers(
        self, ops_client: TestClient[Litestar]
    ) -> None:
        schema = ops_client.get("/schema/openapi.json").json()
        operation = schema["paths"]["/ops/dead-letters"]["get"]
        parameters = {p["name"]: p for p in operation["parameters"]}

        limit, after = parameters["limit"], parameters["after"]
        assert (limit["in"], limit["schema"]["minimum"], limit["schema"]["maximum"]) == (
            "query",
            1,
            1000,
        )
        assert limit["schema"]["default"] == 100
        assert (after["in"], after["schema"]["minimum"]) == ("query", 0)
        assert limit["description"] and after["description"]
        assert parameters["queue"]["description"]
        headers = operation["responses"]["200"]["headers"]
        assert {"Link", "X-Next-Cursor"} <= set(headers)


class TestRetry:
    def test_puts_the_message_and_its_group_back_into_the_queue(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        head, behind = park_group(db, QUEUE, "order-1", 2, "boom")
        [elsewhere] = park_group(db, QUEUE, "order-2", 1, "boom")
        original = {p.id: p.msg_id for p in list_parked(db)}
        assert queue_rows(db, QUEUE) == []

        response = ops_client.post(f"/ops/dead-letters/{head}/retry", headers=ops)

        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["id"], body["queue_name"], body["group_key"]) == (head, QUEUE, "order-1")
        assert body["msg_ids"] == [original[head], original[behind]], "original ids, in order"
        assert queue_rows(db, QUEUE) == body["msg_ids"]
        assert _parked_ids(db) == [elsewhere], "only that group was re-queued"
        visible = db.execute(
            "SELECT count(*) FROM pgmq.read(%s, 30, 10) WHERE read_ct = 1", (QUEUE,)
        ).fetchone()
        assert visible == (2,), "visible again with the read count reset"

    def test_a_message_without_a_group_goes_back_alone(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        send(db, QUEUE, "notes.Loose")
        db.execute(
            "INSERT INTO ops.parked_message (queue_name, msg_id, message, read_ct, error) "
            "VALUES (%s, 900, '{}', 6, 'boom')",
            (QUEUE,),
        )
        [parked_id] = _parked_ids(db)

        response = ops_client.post(f"/ops/dead-letters/{parked_id}/retry", headers=ops)

        assert response.json()["msg_ids"] == [900]
        assert len(queue_rows(db, QUEUE)) == 2
        assert _parked_ids(db) == []

    def test_a_message_whose_queue_was_dropped_is_409_and_stays_parked(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        [parked_id] = park_group(db, OTHER, "g", 1, "boom")
        db.execute("SELECT pgmq.drop_queue(%s)", (OTHER,))
        db.commit()

        response = ops_client.post(f"/ops/dead-letters/{parked_id}/retry", headers=ops)

        body = assert_problem(response, 409)
        assert body["type"].endswith("queue-missing")
        assert _parked_ids(db) == [parked_id]

    def test_an_unknown_or_already_retried_id_is_404(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        [parked_id] = park_group(db, QUEUE, "g", 1, "boom")
        assert ops_client.post(f"/ops/dead-letters/{parked_id}/retry", headers=ops).is_success

        again = ops_client.post(f"/ops/dead-letters/{parked_id}/retry", headers=ops)

        body = assert_problem(again, 404)
        assert str(parked_id) in body["detail"]
        assert len(queue_rows(db, QUEUE)) == 1, "nothing sent twice"
        assert_problem(ops_client.post("/ops/dead-letters/999999/retry", headers=ops), 404)
        # Beyond the ids' bigint: no such message (it was a 500 from PostgreSQL).
        too_big = "/ops/dead-letters/9223372036854775808"
        assert_problem(ops_client.post(f"{too_big}/retry", headers=ops), 404)
        assert_problem(ops_client.delete(too_big, headers=ops), 404)


class TestDiscard:
    def test_deletes_only_that_message_for_good(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        head, behind = park_group(db, QUEUE, "g", 2, "boom")

        response = ops_client.delete(f"/ops/dead-letters/{head}", headers=ops)

        assert response.status_code == 204
        assert _parked_ids(db) == [behind], "what waited behind it stays parked"
        assert queue_rows(db, QUEUE) == []

    def test_an_unknown_id_is_404(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        [parked_id] = park_group(db, QUEUE, "g", 1, "boom")
        assert ops_client.delete(f"/ops/dead-letters/{parked_id}", headers=ops).status_code == 204

        assert_problem(ops_client.delete(f"/ops/dead-letters/{parked_id}", headers=ops), 404)
        assert_problem(ops_client.delete("/ops/dead-letters/999999", headers=ops), 404)


def _saga(db: psycopg.Connection, saga_id: object) -> tuple[object, ...]:
    row = db.execute(
        "SELECT status, parked_from, parked_reason, version FROM saga.instance WHERE saga_id = %s",
        [saga_id],
    ).fetchone()
    db.commit()
    assert row is not None
    return tuple(row)


class TestASagaWaitingOnADeadLetter:
    """Guarantee 5: a saga settles or is parked visibly. One whose command was dead-lettered
    while nothing else would move it (compensating: undos have no deadline) is parked with the
    reason, and goes back to what it was doing when the command is re-queued."""

    def test_a_compensating_saga_is_parked_with_its_command_and_resumes_on_retry(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        saga_id = add_saga(db, "dining.Booking", "COMPENSATING")
        db.execute("UPDATE saga.instance SET deadline_at = NULL WHERE saga_id = %s", [saga_id])
        db.commit()
        stream = command_stream("dining.Booking", saga_id)

        [parked_id] = park_group(db, QUEUE, stream, 1, "RefundDeclined: charge_not_found")

        status, parked_from, reason, version = _saga(db, saga_id)
        assert (status, parked_from) == ("PARKED", "COMPENSATING")
        assert f"#{parked_id}" in str(reason) and "charge_not_found" in str(reason)
        listed = ops_client.get("/ops/sagas", params={"status": "PARKED"}, headers=ops).json()
        assert [s["saga_id"] for s in listed] == [str(saga_id)]

        assert ops_client.post(f"/ops/dead-letters/{parked_id}/retry", headers=ops).is_success

        assert _saga(db, saga_id)[:3] == ("COMPENSATING", None, None)
        assert _saga(db, saga_id)[3] == int(str(version)) + 1

    def test_a_running_saga_with_a_deadline_is_left_to_it(self, db: psycopg.Connection) -> None:
        # Its deadline compensates it by itself (add_saga sets one 5 minutes ahead).
        saga_id = add_saga(db, "dining.Booking", "RUNNING")
        park_group(db, QUEUE, command_stream("dining.Booking", saga_id), 1, "boom")
        assert _saga(db, saga_id)[:2] == ("RUNNING", None)

    def test_a_saga_its_definition_parked_stays_parked_on_a_retry(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        saga_id = add_saga(db, "dining.Booking", "PARKED", parked_reason="the definition said so")
        [parked_id] = park_group(db, QUEUE, command_stream("dining.Booking", saga_id), 1, "boom")

        assert ops_client.post(f"/ops/dead-letters/{parked_id}/retry", headers=ops).is_success

        assert _saga(db, saga_id)[:3] == ("PARKED", None, "the definition said so")
