"""The command helper over real HTTP: 202 + Location + log position, idempotency, Prefer: wait."""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psycopg
import structlog
from litestar import Litestar
from litestar.testing import TestClient

from api.auth import Role
from api.idempotency import purge_idempotency, purge_idempotency_async
from haengbok.settings import Settings
from tests.integration.api.support import assert_problem, bearer, count, events, notes
from tests.waiting import wait_until


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


class TestAcceptedCommand:
    def test_answers_202_with_location_log_position_and_the_event_of_the_request(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        correlation_id = str(uuid.uuid4())

        response = client.post(
            "/notes", json={"text": "hello"}, headers={**auth, "X-Correlation-ID": correlation_id}
        )

        assert response.status_code == 202, response.text
        body = response.json()
        assert response.headers["location"] == f"/notes/{body['id']}"
        assert body["status"] == "PENDING"
        assert int(response.headers["x-log-position"]) == body["log_position"]
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT position, type, correlation_id::text, causation_id::text, actor "
                "FROM outbox.event WHERE stream = %s",
                (f"note-{body['id']}",),
            ).fetchone()
        assert row == (
            body["log_position"],
            "notes.NoteWritten",
            correlation_id,
            response.headers["x-request-id"],
            "alice",
        )
        assert notes(database_url) == 1

    def test_wakes_the_relay_after_commit(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        with psycopg.connect(database_url, autocommit=True) as listener:
            listener.execute("LISTEN haengbok_outbox")

            assert client.post("/notes", json={"text": "wake up"}, headers=auth).status_code == 202

            received = list(listener.notifies(timeout=5, stop_after=1))
        assert [n.channel for n in received] == ["haengbok_outbox"]


class TestWritesOnce:
    """A handler whose one write is its last statement runs with no transaction around it,
    unless an Idempotency-Key needs one for its claim."""

    def test_without_a_key_it_runs_outside_a_transaction_and_writes_row_and_event(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        response = client.post("/notes/once", json={"text": "one statement"}, headers=auth)

        assert response.status_code == 202, response.text
        body = response.json()
        assert body["in_transaction"] is False
        assert int(response.headers["x-log-position"]) == body["log_position"]
        assert notes(database_url) == 1
        assert events(database_url) == 1

    def test_with_a_key_it_runs_in_the_keys_transaction_and_replays(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        headers = {**auth, **_key()}

        first = client.post("/notes/once", json={"text": "keyed"}, headers=headers)
        again = client.post("/notes/once", json={"text": "keyed"}, headers=headers)

        assert first.status_code == again.status_code == 202
        assert first.json()["in_transaction"] is True
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert notes(database_url) == 1


class TestIdempotencyKey:
    def test_a_retry_replays_the_same_response_and_has_one_effect(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        headers = {**auth, **_key()}
        first = client.post("/notes", json={"text": "once"}, headers=headers)
        second = client.post("/notes", json={"text": "once"}, headers=headers)

        assert first.status_code == second.status_code == 202
        assert second.content == first.content
        assert second.headers["location"] == first.headers["location"]
        assert second.headers["x-log-position"] == first.headers["x-log-position"]
        assert second.headers["idempotent-replayed"] == "true"
        assert notes(database_url) == 1
        assert events(database_url) == 1

    def test_the_same_key_with_another_body_is_a_422_and_writes_nothing(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        headers = {**auth, **_key()}
        assert client.post("/notes", json={"text": "a"}, headers=headers).status_code == 202

        response = client.post("/notes", json={"text": "b"}, headers=headers)

        body = assert_problem(response, 422)
        assert body["type"].endswith("idempotency-key-reused")
        assert notes(database_url) == 1
        assert events(database_url) == 1

    def test_keys_are_scoped_to_the_caller(
        self, client: TestClient[Litestar], settings: Settings, database_url: str
    ) -> None:
        key = _key()
        for subject in ("alice", "bob"):
            headers = {**bearer(settings, Role.CUSTOMER, subject=subject), **key}
            assert client.post("/notes", json={"text": "mine"}, headers=headers).status_code == 202
        assert notes(database_url) == 2

    def test_a_malformed_key_is_a_400(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        response = client.post(
            "/notes", json={"text": "x"}, headers={**auth, "Idempotency-Key": "k" * 300}
        )
        assert_problem(response, 400)
        assert notes(database_url) == 0

    def test_concurrent_duplicates_have_one_effect_and_the_same_answer(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        headers = {**auth, **_key()}
        with psycopg.connect(database_url) as gate, ThreadPoolExecutor(2) as pool:
            # Hold the gate: the first request stops inside its handler, after claiming the key.
            gate.execute("SELECT 1 FROM notes_test.gate WHERE id = 1 FOR UPDATE")
            first = pool.submit(client.post, "/notes", json={"text": "dup"}, headers=headers)
            wait_until(lambda: _waiting_on_locks(database_url) == 1, timeout=10)
            # The duplicate blocks on the first request's uncommitted idempotency row.
            second = pool.submit(client.post, "/notes", json={"text": "dup"}, headers=headers)
            wait_until(lambda: _waiting_on_locks(database_url) == 2, timeout=10)
            gate.rollback()
            responses = [first.result(timeout=10), second.result(timeout=10)]

        assert [r.status_code for r in responses] == [202, 202]
        assert responses[0].content == responses[1].content
        assert notes(database_url) == 1
        assert events(database_url) == 1

    def test_old_records_are_purged_and_recent_ones_kept(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        for _ in range(3):
            client.post("/notes", json={"text": "kept"}, headers={**auth, **_key()})
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "INSERT INTO ops.idempotency (scope, key, request_hash, created_at) "
                "SELECT 'old', g::text, 'h', now() - interval '8 days' FROM generate_series(1, 5) g"
            )
            conn.commit()
            deleted = purge_idempotency(conn, older_than=timedelta(days=7), batch_size=2)
        assert deleted == 5
        assert count(database_url, "SELECT count(*) FROM ops.idempotency") == 3

    def test_the_async_purge_deletes_only_past_the_horizon(self, database_url: str) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO ops.idempotency (scope, key, request_hash, created_at) "
                "VALUES ('s', 'old', 'h', now() - interval '2 hours'), ('s', 'new', 'h', now())"
            )

        async def purge() -> int:
            async with await psycopg.AsyncConnection.connect(database_url) as aconn:
                return await purge_idempotency_async(aconn, older_than=timedelta(hours=1))

        assert asyncio.run(purge()) == 1
        assert count(database_url, "SELECT count(*) FROM ops.idempotency WHERE key = 'new'") == 1


def _waiting_on_locks(database_url: str) -> int:
    return count(
        database_url,
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )


class TestPreferWait:
    def test_answers_200_with_the_settled_resource_when_it_settles_in_time(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        settler = threading.Thread(target=_process_first_note, args=(database_url,))
        settler.start()
        try:
            response = client.post(
                "/notes", json={"text": "wait"}, headers={**auth, "Prefer": "wait=3"}
            )
        finally:
            settler.join(timeout=10)

        assert response.status_code == 200, response.text
        assert response.headers["preference-applied"] == "wait=3"
        body = response.json()
        assert body["status"] == "PROCESSED"
        assert response.headers["location"] == f"/notes/{body['id']}"
        assert body["log_position"] == int(response.headers["x-log-position"])

    def test_answers_202_when_the_wait_runs_out(
        self, client: TestClient[Litestar], auth: dict[str, str]
    ) -> None:
        response = client.post(
            "/notes", json={"text": "slow"}, headers={**auth, "Prefer": "wait=0.3"}
        )

        assert response.status_code == 202
        assert "preference-applied" not in response.headers
        assert response.json()["status"] == "PENDING"

    def test_the_wait_is_capped_by_the_settings(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        settler = threading.Thread(target=_process_first_note, args=(database_url,))
        settler.start()
        try:
            response = client.post(
                "/notes",
                json={"text": "cap"},
                headers={**auth, "Prefer": "respond-async, wait=600"},
            )
        finally:
            settler.join(timeout=10)

        assert response.status_code == 200
        assert response.headers["preference-applied"] == "wait=3"  # read_wait_max_seconds


def _process_first_note(database_url: str) -> None:
    """Play the saga: once the command committed, mark its note processed."""
    with psycopg.connect(database_url, autocommit=True) as conn:

        def committed() -> bool:
            return conn.execute("SELECT count(*) FROM notes_test.note").fetchone() == (1,)

        wait_until(committed, timeout=10)
        conn.execute("UPDATE notes_test.note SET processed = true")


class TestFailedCommand:
    def test_a_concurrency_conflict_is_a_409_and_writes_nothing(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        response = client.post("/notes/conflicting", json={"text": "x"}, headers={**auth, **_key()})
        body = assert_problem(response, 409)
        assert body["type"].endswith("concurrency-conflict")
        assert notes(database_url) == 0
        assert count(database_url, "SELECT count(*) FROM ops.idempotency") == 0

    def test_an_overloaded_dependency_is_a_503_with_retry_after(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        response = client.post("/notes/overloaded", json={"text": "x"}, headers=auth)
        body = assert_problem(response, 503)
        assert response.headers["retry-after"] == "7"
        assert body["detail"] == "the note provider is overloaded"
        assert notes(database_url) == 0

    def test_an_unexpected_error_is_a_500_without_internals_and_logged(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        with structlog.testing.capture_logs() as logs:
            response = client.post("/notes/broken", json={"text": "x"}, headers=auth)

        body = assert_problem(response, 500)
        assert "hunter2" not in response.text
        assert "Traceback" not in response.text
        errors = [e for e in logs if e["event"] == "unhandled_error"]
        assert errors
        assert errors[0]["correlation_id"] == body["correlation_id"]
        assert notes(database_url) == 0
