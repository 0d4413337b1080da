"""Helpers for the API tests: tokens, row counts, problem-document checks."""

from __future__ import annotations

from typing import Any

import psycopg

from api.auth import Role, mint_token
from haengbok.settings import Settings

MAX_BODY = 1024


def bearer(
    settings: Settings, *roles: Role, subject: str = "alice", ttl_seconds: int = 600
) -> dict[str, str]:
    token = mint_token(settings, subject, roles or (Role.CUSTOMER,), ttl_seconds)
    return {"Authorization": f"Bearer {token}"}


def count(database_url: str, sql: str, *params: Any) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql, params or None).fetchone()
    assert row is not None
    return int(row[0])


def notes(database_url: str) -> int:
    return count(database_url, "SELECT count(*) FROM notes_test.note")


def events(database_url: str) -> int:
    return count(database_url, "SELECT count(*) FROM outbox.event")


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["type"]
    assert body["correlation_id"] == response.headers["x-correlation-id"]
    return body
