"""Bearer JWT: every doubtful token is a 401 problem; a missing role is a 403."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.auth import Role
from haengbok.settings import Settings
from tests.integration.api.support import assert_problem, bearer, notes


def _claims(settings: Settings, **overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": "mallory",
        "roles": ["customer"],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _unsigned(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        raw = json.dumps(data, default=lambda d: int(d.timestamp())).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _bad_tokens(settings: Settings) -> dict[str, str]:
    secret = settings.jwt_secret
    return {
        "wrong signature": jwt.encode(_claims(settings), "another-secret-" * 4, "HS256"),
        "expired": jwt.encode(
            _claims(settings, exp=datetime.now(UTC) - timedelta(seconds=30)), secret, "HS256"
        ),
        "alg none": _unsigned(_claims(settings)),
        "wrong audience": jwt.encode(_claims(settings, aud="someone-else"), secret, "HS256"),
        "wrong issuer": jwt.encode(_claims(settings, iss="evil"), secret, "HS256"),
        "no exp": jwt.encode(_claims(settings, exp=None), secret, "HS256"),
        "roles not a list": jwt.encode(_claims(settings, roles="customer"), secret, "HS256"),
        "malformed": "not.a.jwt",
    }


class TestBadTokens:
    @pytest.mark.parametrize(
        "case",
        [
            "wrong signature",
            "expired",
            "alg none",
            "wrong audience",
            "wrong issuer",
            "no exp",
            "roles not a list",
            "malformed",
        ],
    )
    def test_is_a_401_problem_and_writes_nothing(
        self, client: TestClient[Litestar], settings: Settings, database_url: str, case: str
    ) -> None:
        token = _bad_tokens(settings)[case]
        response = client.post(
            "/notes", json={"text": "x"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert notes(database_url) == 0

    def test_no_token_is_a_401(self, client: TestClient[Litestar]) -> None:
        response = client.post("/notes", json={"text": "x"})
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == 'Bearer realm="haengbok"'

    def test_another_scheme_is_a_401(
        self, client: TestClient[Litestar], settings: Settings
    ) -> None:
        token = bearer(settings)["Authorization"].removeprefix("Bearer ")
        response = client.post(
            "/notes", json={"text": "x"}, headers={"Authorization": f"Basic {token}"}
        )
        assert_problem(response, 401)

    def test_an_expired_token_minted_by_us_is_a_401(
        self, client: TestClient[Litestar], settings: Settings
    ) -> None:
        headers = bearer(settings, Role.CUSTOMER, ttl_seconds=-60)
        assert_problem(client.post("/notes", json={"text": "x"}, headers=headers), 401)


class TestRoles:
    def test_a_caller_without_the_role_is_a_403(
        self, client: TestClient[Litestar], settings: Settings, database_url: str
    ) -> None:
        headers = bearer(settings, Role.ANALYST, Role.CINEMA_ADMIN)
        body = assert_problem(client.post("/notes", json={"text": "x"}, headers=headers), 403)
        assert "customer" in body["detail"]
        assert notes(database_url) == 0

    def test_one_matching_role_is_enough(
        self, client: TestClient[Litestar], settings: Settings
    ) -> None:
        headers = bearer(settings, Role.OPS, Role.CUSTOMER)
        assert client.post("/notes", json={"text": "x"}, headers=headers).status_code == 202


class TestPublicRoutes:
    @pytest.mark.parametrize(
        "path", ["/health/live", "/health/ready", "/metrics", "/schema", "/schema/openapi.json"]
    )
    def test_need_no_token(self, client: TestClient[Litestar], path: str) -> None:
        assert client.get(path).status_code == 200
