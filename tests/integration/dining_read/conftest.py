"""Fixtures for the Dining read side: its projectors and the query API over a real database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from api.dining.queries import controllers
from haengbok.settings import Settings
from projections.dining import projectors
from projections.projector import Projector


@pytest.fixture
def dining_projectors() -> list[Projector]:
    """The Dining projectors; their live tables come from migration 0004."""
    return projectors()


def query_settings(database_url: str, read_wait_max_seconds: float = 5.0) -> Settings:
    return Settings(
        database_url=database_url,
        read_wait_max_seconds=read_wait_max_seconds,
        pool_min_size=1,
        pool_max_size=4,
    )


@pytest.fixture
def settings(database_url: str) -> Settings:
    return query_settings(database_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(settings, controllers=controllers())) as test_client:
        yield test_client
