"""/ops/dead-letters: parked messages are listed with their error, re-queued (with what waits
behind them in their FIFO group) or discarded, through outbox.parking."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.auth import Role
from haengbok.bootstrap import build_api
from haengbok.settings import Settings
from outbox.parking import list_parked
from tests.integration.api.support import assert_problem, bearer
from tests.integration.platform_state import park_group, queue_rows, send

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
