"""OpenAPI at /schema: JSON, interactive UIs, operation ids, the bearer security scheme."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar, Router, get
from litestar.testing import TestClient

from api.app import create_app
from api.auth import SECURITY_SCHEME
from haengbok.settings import Settings

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


class TestSchemaDocument:
    def test_every_operation_has_an_operation_id(self, client: TestClient[Litestar]) -> None:
        response = client.get("/schema/openapi.json")
        assert response.status_code == 200
        operations = _operations(response.json())
        assert {(p, m) for p, m, _ in operations} >= {
            ("/health/live", "get"),
            ("/health/ready", "get"),
            ("/metrics", "get"),
            ("/notes", "post"),
        }
        ids = [op.get("operationId") for _, _, op in operations]
        assert all(ids)
        assert len(ids) == len(set(ids))

    def test_documents_bearer_auth_and_the_public_routes(
        self, client: TestClient[Litestar]
    ) -> None:
        schema = client.get("/schema/openapi.json").json()
        scheme = schema["components"]["securitySchemes"][SECURITY_SCHEME]
        assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == (
            "http",
            "bearer",
            "JWT",
        )
        assert schema["security"] == [{SECURITY_SCHEME: []}]
        assert schema["paths"]["/health/live"]["get"]["security"] == [{}]
        assert schema["paths"]["/metrics"]["get"]["security"] == [{}]
        assert "security" not in schema["paths"]["/notes"]["post"]  # inherits bearer auth


class TestInteractiveUi:
    @pytest.mark.parametrize("path", ["/schema", "/schema/swagger", "/schema/scalar"])
    def test_serves_an_html_page(self, client: TestClient[Litestar], path: str) -> None:
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "Haengbok API" in response.text


class TestOperationIdsAreRequired:
    def test_an_app_with_an_unnamed_route_is_refused(self, settings: Settings) -> None:
        @get("/unnamed")
        async def unnamed() -> dict[str, str]:
            return {}

        with pytest.raises(ValueError, match="/unnamed"):
            create_app(settings, controllers=[Router(path="/", route_handlers=[unnamed])])
