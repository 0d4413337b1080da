"""Liveness never depends on the database; readiness does, and fails while draining."""

from __future__ import annotations

import dataclasses

from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from api.health import begin_draining
from haengbok.dburl import with_database
from haengbok.settings import Settings
from tests.integration.api.support import assert_problem


class TestLiveness:
    def test_is_200(self, client: TestClient[Litestar]) -> None:
        response = client.get("/health/live")
        assert response.status_code == 200
        assert response.json() == {"status": "live"}


class TestReadiness:
    def test_is_200_when_the_database_answers(self, client: TestClient[Litestar]) -> None:
        response = client.get("/health/ready")
        assert response.status_code == 200
        assert response.json() == {"status": "ready"}

    def test_is_503_once_draining_while_liveness_stays_200(
        self, client: TestClient[Litestar], app: Litestar
    ) -> None:
        begin_draining(app)

        response = client.get("/health/ready")

        body = assert_problem(response, 503)
        assert body["type"].endswith("draining")
        assert int(response.headers["retry-after"]) > 0
        assert client.get("/health/live").status_code == 200

    def test_is_503_when_the_database_is_unreachable(self, settings: Settings) -> None:
        assert settings.database_url is not None
        missing = with_database(settings.database_url, "no_such_database_for_haengbok")
        app = create_app(
            dataclasses.replace(settings, database_url=missing), db_probe_timeout_seconds=0.3
        )
        with TestClient(app) as client:
            response = client.get("/health/ready")
            live = client.get("/health/live")

        body = assert_problem(response, 503)
        assert body["type"].endswith("database-unavailable")
        assert response.headers["retry-after"]
        assert live.status_code == 200
