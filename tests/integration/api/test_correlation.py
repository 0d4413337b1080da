"""Correlation ids: echoed, generated, validated, logged, and stamped on appended events."""

from __future__ import annotations

import uuid

import psycopg
import structlog
from litestar import Litestar
from litestar.testing import TestClient

from haengbok.logs import context_processors
from tests.integration.api.support import assert_problem


class TestCorrelationHeader:
    def test_a_supplied_id_is_echoed_on_the_response(self, client: TestClient[Litestar]) -> None:
        correlation_id = str(uuid.uuid4())
        response = client.get("/health/live", headers={"X-Correlation-ID": correlation_id})
        assert response.headers["x-correlation-id"] == correlation_id
        assert response.headers["x-request-id"] != correlation_id

    def test_without_one_the_request_starts_a_conversation(
        self, client: TestClient[Litestar]
    ) -> None:
        response = client.get("/health/live")
        generated = uuid.UUID(response.headers["x-correlation-id"])
        assert str(generated) == response.headers["x-request-id"]

    def test_errors_and_unknown_paths_carry_it_too(self, client: TestClient[Litestar]) -> None:
        correlation_id = str(uuid.uuid4())
        response = client.get("/nowhere", headers={"X-Correlation-ID": correlation_id})
        assert assert_problem(response, 404)["correlation_id"] == correlation_id

    def test_a_malformed_id_is_a_400(self, client: TestClient[Litestar]) -> None:
        response = client.get("/health/live", headers={"X-Correlation-ID": "'; drop table --"})
        body = assert_problem(response, 400)
        assert body["errors"][0]["key"] == "X-Correlation-ID"


class TestCorrelationInLogsAndEvents:
    def test_log_lines_and_the_event_row_carry_the_request_ids(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        correlation_id = str(uuid.uuid4())
        with structlog.testing.capture_logs(processors=context_processors()) as logs:
            response = client.post(
                "/notes",
                json={"text": "log me"},
                headers={**auth, "X-Correlation-ID": correlation_id},
            )

        assert response.status_code == 202
        written = [e for e in logs if e["event"] == "note_written"]
        assert written
        assert written[0]["correlation_id"] == correlation_id
        assert written[0]["request_id"] == response.headers["x-request-id"]
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT correlation_id::text FROM outbox.event").fetchone()
        assert row == (correlation_id,)
