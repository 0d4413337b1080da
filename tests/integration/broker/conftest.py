"""Brokers and in-process Dramatiq workers for the broker tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
import pytest

from outbox.broker import PgmqBroker

#: Short timeouts keep the suite fast; the visibility timeout still exceeds the time limit.
FAST = {
    "visibility_timeout_seconds": 10,
    "actor_time_limit_seconds": 5,
    "poll_max_ms": 250,
    "pool_max_size": 4,
}


@contextmanager
def running_worker(broker: dramatiq.Broker, threads: int = 4) -> Iterator[dramatiq.Worker]:
    """A real Dramatiq worker in this process, stopped (and its consumers closed) on exit."""
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(timeout=10_000)


@pytest.fixture
def make_pgmq_broker(database_url: str) -> Iterator[Callable[..., PgmqBroker]]:
    """Build PgmqBrokers on this test's database; all are closed after the test."""
    brokers: list[PgmqBroker] = []

    def make(**options: Any) -> PgmqBroker:
        broker = PgmqBroker(database_url, **{**FAST, **options})
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.close()
