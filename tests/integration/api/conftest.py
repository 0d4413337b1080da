"""The API under test: ``create_app`` with the test-only notes controller, over a real database."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from api.auth import Role
from haengbok.settings import Settings
from tests.integration.api.notes import SCHEMA_DDL, NotesController
from tests.integration.api.support import MAX_BODY, bearer


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        max_request_body_bytes=MAX_BODY,
        read_wait_max_seconds=3.0,
        pool_min_size=1,
        pool_max_size=4,
    )


@pytest.fixture
def notes_schema(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SCHEMA_DDL)


@pytest.fixture
def app(settings: Settings, notes_schema: None) -> Litestar:
    return create_app(settings, controllers=[NotesController])


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    # TestClient runs the app (and its lifespan) on its own event loop thread; requests sent
    # from several threads therefore run concurrently, as they would under uvicorn.
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def auth(settings: Settings) -> dict[str, str]:
    """Headers of a customer called alice."""
    return bearer(settings, Role.CUSTOMER)
