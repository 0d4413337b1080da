"""A connection pool and a broker with the example order saga's queue, for the saga tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from outbox.broker import PgmqBroker

#: The example order saga's queue (tests.example.shop.OrderSaga's subscriber).
SAGA_QUEUE = "saga_order"


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool[Any]]:
    with ConnectionPool(database_url, min_size=1, max_size=4) as opened:
        yield opened


@pytest.fixture
def broker(database_url: str) -> Iterator[PgmqBroker]:
    made = PgmqBroker(database_url, ordered_queues=[SAGA_QUEUE])
    yield made
    made.close()
