"""Every rejected request answers with a problem document and writes nothing."""

from __future__ import annotations

from collections.abc import Iterator

from litestar import Litestar
from litestar.testing import TestClient

from tests.integration.api.support import MAX_BODY, assert_problem, events, notes


class TestRejectedCommandBodies:
    def test_malformed_json(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        response = client.post(
            "/notes", content=b'{"text": ', headers={**auth, "Content-Type": "application/json"}
        )
        assert_problem(response, 400)
        assert notes(database_url) == events(database_url) == 0

    def test_unknown_field_is_listed(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        response = client.post("/notes", json={"text": "a", "colour": "red"}, headers=auth)
        body = assert_problem(response, 400)
        assert body["type"].endswith("validation-error")
        assert any("colour" in e["message"] for e in body["errors"])
        assert notes(database_url) == events(database_url) == 0

    def test_wrong_type_names_the_field(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        response = client.post("/notes", json={"text": "a", "priority": "high"}, headers=auth)
        body = assert_problem(response, 400)
        assert [(e["key"], e["source"]) for e in body["errors"]] == [("priority", "body")]
        assert notes(database_url) == 0

    def test_constraint_violation_and_missing_field(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        assert_problem(client.post("/notes", json={"text": ""}, headers=auth), 400)
        body = assert_problem(client.post("/notes", json={}, headers=auth), 400)
        assert any("text" in e["message"] for e in body["errors"])
        assert notes(database_url) == 0

    def test_oversize_body_is_a_413(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        response = client.post("/notes", json={"text": "x" * (MAX_BODY + 1)}, headers=auth)
        assert_problem(response, 413)
        assert notes(database_url) == events(database_url) == 0

    def test_oversize_streamed_body_without_length_is_a_413(
        self, client: TestClient[Litestar], auth: dict[str, str], database_url: str
    ) -> None:
        def chunks() -> Iterator[bytes]:
            yield b'{"text": "'
            for _ in range(MAX_BODY // 100 + 1):
                yield b"y" * 100
            yield b'"}'

        response = client.post(
            "/notes", content=chunks(), headers={**auth, "Content-Type": "application/json"}
        )
        assert_problem(response, 413)
        assert notes(database_url) == 0


class TestRouting:
    def test_unknown_path_is_a_404_problem(self, client: TestClient[Litestar]) -> None:
        body = assert_problem(client.get("/no/such/thing"), 404)
        assert body["instance"] == "/no/such/thing"

    def test_wrong_method_is_a_405_problem_with_allow(self, client: TestClient[Litestar]) -> None:
        response = client.delete("/health/live")
        assert_problem(response, 405)
        assert "GET" in response.headers["allow"]
