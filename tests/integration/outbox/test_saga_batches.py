"""A saga's subscriber in batches: the batch's instances are loaded in one statement, changed
by each of its messages in turn, and saved in one statement with what they emitted."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from domain.messages import Message
from outbox.broker import PgmqBroker
from outbox.broker_message import PgmqBatchProxy
from outbox.consumers import Subscriber, declare_subscribers, deliver_batch
from outbox.envelope import Envelope
from outbox.relay import sync_routes
from outbox.sagas import SagaRunner
from sql import query
from tests.example.shop import ChargePayment, OrderPlaced, OrderSaga, ReserveStock, StockReserved
from tests.integration.enqueueing import enqueue
from tests.integration.outbox.conftest import SAGA_QUEUE

QUEUE = SAGA_QUEUE


@pytest.fixture
def saga(database_url: str, pool: ConnectionPool[Any], broker: PgmqBroker) -> Subscriber:
    sub = SagaRunner(OrderSaga()).subscriber(batch_size=16)
    with psycopg.connect(database_url) as conn, conn.transaction():
        sync_routes(conn, [sub.route])
    declare_subscribers(broker, lambda: pool, [sub])
    return sub


def _envelope(i: int, m: Message) -> Envelope:
    return Envelope(
        position=i + 1, global_position=i + 1, event_id=uuid.uuid4(), kind=m.KIND,
        type=m.TYPE, stream=f"{m.stream()}-{i}", version=1, payload=m.payload(),
        correlation_id=uuid.uuid4(), causation_id=None, actor=None,
        occurred_at=datetime.now(UTC),
    )  # fmt: skip


def send(broker: PgmqBroker, sub: Subscriber, *messages: Message) -> None:
    enqueue(broker, sub, [_envelope(i, m) for i, m in enumerate(messages)])


def instances(url: str) -> dict[uuid.UUID, dict[str, Any]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT *, xmin::text AS tx FROM saga.instance").fetchall()
    return {row["saga_id"]: row for row in rows}


def run_batch(pool: ConnectionPool[Any], broker: PgmqBroker, sub: Subscriber, count: int) -> None:
    consumer = broker.consume(QUEUE, prefetch=count, timeout=1000)
    batch = next(consumer)
    assert isinstance(batch, PgmqBatchProxy) and len(batch.parts) == count
    assert deliver_batch(pool, broker, sub, batch) == count
    consumer.ack(batch)
    consumer.close()


def test_one_batch_starts_advances_and_saves_every_instance_it_touches(
    database_url: str, pool: ConnectionPool[Any], broker: PgmqBroker, saga: Subscriber
) -> None:
    existing, other, started, twice = (uuid.uuid4() for _ in range(4))
    send(broker, saga, OrderPlaced(existing, 70), OrderPlaced(other, 80))
    run_batch(pool, broker, saga, 2)
    send(
        broker, saga,
        OrderPlaced(started, 10), OrderPlaced(twice, 20), StockReserved(twice),
        StockReserved(existing),
    )  # fmt: skip
    run_batch(pool, broker, saga, 4)

    rows = instances(database_url)
    assert {k: (r["step"], r["version"]) for k, r in rows.items()} == {
        existing: ("charging", 2),
        other: ("reserving_stock", 1),
        started: ("reserving_stock", 1),
        twice: ("charging", 2),  # started and moved on by one batch, in message order
    }
    batch_tx = rows[started]["tx"]
    assert rows[twice]["tx"] == rows[existing]["tx"] == batch_tx != rows[other]["tx"]
    with psycopg.connect(database_url) as conn:
        emitted = conn.execute(
            "SELECT type, payload ->> 'order_id' FROM outbox.event WHERE xmin::text = %s",
            [batch_tx],
        ).fetchall()
    assert sorted(emitted) == sorted([
        (ChargePayment.TYPE, str(existing)), (ChargePayment.TYPE, str(twice)),
        (ReserveStock.TYPE, str(started)), (ReserveStock.TYPE, str(twice)),
    ])  # fmt: skip


def test_a_start_delivered_again_in_a_batch_starts_its_saga_once(
    database_url: str, pool: ConnectionPool[Any], broker: PgmqBroker, saga: Subscriber
) -> None:
    """The batch creates its starts' instances up front (one statement); a start whose
    instance exists already, or that the batch holds twice, is not started again."""
    earlier, doubled, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    send(broker, saga, OrderPlaced(earlier, 10), OrderPlaced(other, 30))
    run_batch(pool, broker, saga, 2)
    send(broker, saga, OrderPlaced(earlier, 10), OrderPlaced(doubled, 20), OrderPlaced(doubled, 20))
    run_batch(pool, broker, saga, 3)

    rows = instances(database_url)
    assert {k: (r["step"], r["version"]) for k, r in rows.items()} == {
        earlier: ("reserving_stock", 1),
        doubled: ("reserving_stock", 1),
        other: ("reserving_stock", 1),
    }
    with psycopg.connect(database_url) as conn:
        reserve = conn.execute(
            "SELECT payload ->> 'order_id', count(*) FROM outbox.event WHERE type = %s GROUP BY 1",
            [ReserveStock.TYPE],
        ).fetchall()
    assert sorted(reserve) == sorted([(str(earlier), 1), (str(doubled), 1), (str(other), 1)])


def test_saving_a_batch_finds_its_instances_by_key_not_by_scanning_them_all(
    database_url: str,
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO saga.instance (saga_id, saga_type, status, step, correlation_id)"
            " SELECT gen_random_uuid(), 'order', 'RUNNING', 's', gen_random_uuid()"
            " FROM generate_series(1, 20000)"
        )
        conn.execute("ANALYZE saga.instance")
        saga_id = uuid.uuid4()
        row = {"saga_id": str(saga_id), "status": "RUNNING", "step": "s", "state": {},
               "completed_steps": [], "version": 2, "loaded_version": 1}  # fmt: skip
        params = {"rows": Jsonb([row]), "saga_ids": [saga_id]}
        plan = conn.execute(f"EXPLAIN (FORMAT JSON) {query('saga.save_many')}", params).fetchone()
    assert "instance_pkey" in json.dumps(plan)
    assert "Seq Scan" not in json.dumps(plan)
