"""Batch delivery: a subscriber with batch_size > 1 runs messages read together in one
transaction, on the real broker, a real Dramatiq worker and real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from outbox.broker import PgmqBroker
from outbox.broker_message import PgmqBatchProxy, PgmqMessageProxy
from outbox.consumers import HandlerContext, Subscriber, declare_subscribers, deliver_batch
from outbox.envelope import Envelope, NewMessage
from tests.integration.broker.conftest import running_worker
from tests.integration.enqueueing import enqueue
from tests.waiting import wait_until

ITEM = "test.Item"
QUEUE = "batcher"
SCHEMA = """
CREATE TABLE public.batch_effects (
    n int NOT NULL, msg_id bigint NOT NULL, txid bigint NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
Handler = Callable[[HandlerContext, Envelope], None]


def record(ctx: HandlerContext, env: Envelope) -> None:
    if env.payload.get("poison"):
        raise RuntimeError(f"poison item {env.payload['n']}")
    ctx.conn.execute(
        "INSERT INTO public.batch_effects (n, msg_id, txid) VALUES (%s, %s, txid_current())",
        [env.payload["n"], ctx.message_id],
    )


def subscriber(handler: Handler = record, **options: Any) -> Subscriber:
    options.setdefault("batch_size", 16)
    return Subscriber(
        QUEUE, frozenset({ITEM}), handler, actor_options={"max_retries": 1}, **options
    )


def envelope(n: int, **payload: Any) -> Envelope:
    return Envelope(
        position=n, global_position=n, event_id=uuid.uuid4(), kind="event", type=ITEM,
        stream=f"item-{n}", version=1, payload={"n": n, **payload},
        correlation_id=uuid.uuid4(), causation_id=None, actor=None,
        occurred_at=datetime.now(UTC),
    )  # fmt: skip


def effects(url: str) -> list[tuple[int, int, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT n, msg_id, txid FROM public.batch_effects ORDER BY at")
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]


@pytest.fixture
def url(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        conn.execute(SCHEMA)
    return database_url


@pytest.fixture
def pool(url: str) -> Iterator[ConnectionPool[Any]]:
    with ConnectionPool(url, min_size=1, max_size=6) as opened:
        yield opened


@pytest.fixture
def broker(make_pgmq_broker: Callable[..., PgmqBroker]) -> PgmqBroker:
    made = make_pgmq_broker(ordered_queues=[QUEUE], min_backoff_ms=10, max_backoff_ms=50)
    made.declare_queue(QUEUE)
    return made


class TestWithAWorker:
    def test_messages_read_together_run_in_one_transaction_each_exactly_once(
        self, url: str, pool: ConnectionPool[Any], broker: PgmqBroker
    ) -> None:
        sub = subscriber()
        declare_subscribers(broker, lambda: pool, [sub])
        enqueue(broker, sub, [envelope(n) for n in range(40)])
        with running_worker(broker, threads=2):
            wait_until(lambda: len(effects(url)) >= 40, timeout=20)
            broker.join(QUEUE, timeout=10_000)
        done = effects(url)
        assert sorted(n for n, _, _ in done) == list(range(40))  # each once
        per_transaction: dict[int, int] = {}
        for _, _, txid in done:
            per_transaction[txid] = per_transaction.get(txid, 0) + 1
        assert len(per_transaction) < 40 and max(per_transaction.values()) > 1, per_transaction

    def test_a_failing_message_runs_alone_and_is_parked_while_its_batch_mates_commit_once(
        self, url: str, pool: ConnectionPool[Any], broker: PgmqBroker
    ) -> None:
        sub = subscriber()
        declare_subscribers(broker, lambda: pool, [sub])
        enqueue(broker, sub, [envelope(n, poison=(n == 5)) for n in range(12)])
        with running_worker(broker, threads=2):
            broker.join(QUEUE, timeout=20_000)
        assert sorted(n for n, _, _ in effects(url)) == [n for n in range(12) if n != 5]
        with psycopg.connect(url) as conn:
            parked = conn.execute(
                "SELECT read_ct, error, message -> 'args' -> 0 -> 'payload' ->> 'n'"
                " FROM ops.parked_message"
            ).fetchall()
        # The batch's attempt counts: then one attempt alone (max_retries=1), then parked.
        assert [(r[0], r[2]) for r in parked] == [(2, "5")]
        assert "poison item 5" in parked[0][1]


class TestDeliverBatch:
    """The consumer's batches and deliver_batch, driven step by step."""

    def next_batch(self, broker: PgmqBroker, count: int) -> tuple[Any, PgmqBatchProxy]:
        consumer = broker.consume(QUEUE, prefetch=count, timeout=1000)
        batch = next(consumer)
        assert isinstance(batch, PgmqBatchProxy) and len(batch.parts) == count
        return consumer, batch

    def test_a_message_another_delivery_finished_is_skipped(
        self, url: str, pool: ConnectionPool[Any], broker: PgmqBroker
    ) -> None:
        sub = subscriber()
        declare_subscribers(broker, lambda: pool, [sub])
        enqueue(broker, sub, [envelope(n) for n in range(3)])
        consumer, batch = self.next_batch(broker, 3)
        gone = batch.parts[1].msg_id
        with psycopg.connect(url) as conn:  # as if a redelivery had committed meanwhile
            conn.execute(f"DELETE FROM pgmq.q_{QUEUE} WHERE msg_id = %s", [gone])

        assert deliver_batch(pool, broker, sub, batch) == 2
        assert batch.done
        assert sorted(n for n, _, _ in effects(url)) == [0, 2]
        consumer.ack(batch)
        consumer.close()
        assert broker.queue_length(QUEUE) == 0

    def test_what_its_handlers_emit_is_appended_once_in_their_order_with_each_ones_cause(
        self, url: str, pool: ConnectionPool[Any], broker: PgmqBroker
    ) -> None:
        def record_and_emit(ctx: HandlerContext, env: Envelope) -> None:
            record(ctx, env)
            n = int(env.payload["n"])
            ctx.emit(*(NewMessage("test.Done", f"done-{n % 2}", {"n": n, "k": k}) for k in (0, 1)))

        sub = subscriber(record_and_emit)
        declare_subscribers(broker, lambda: pool, [sub])
        sent = [envelope(n) for n in range(4)]
        enqueue(broker, sub, sent)
        consumer, batch = self.next_batch(broker, 4)
        assert deliver_batch(pool, broker, sub, batch) == 4
        consumer.ack(batch)
        consumer.close()

        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT payload, stream, version, causation_id, correlation_id, xmin::text"
                " FROM outbox.event WHERE type = 'test.Done' ORDER BY position"
            ).fetchall()
        assert [(r[0]["n"], r[0]["k"]) for r in rows] == [(n, k) for n in range(4) for k in (0, 1)]
        assert [(r[1], r[2]) for r in rows if r[1] == "done-0"] == [
            ("done-0", v) for v in (1, 2, 3, 4)
        ]
        causes = {env.payload["n"]: (env.event_id, env.correlation_id) for env in sent}
        assert all((r[3], r[4]) == causes[r[0]["n"]] for r in rows)
        with psycopg.connect(url) as conn:
            handler_tx = {r[0] for r in conn.execute("SELECT xmin::text FROM batch_effects")}
        assert len(handler_tx) == 1
        assert {r[5] for r in rows} == handler_tx, "appended by the batch's own transaction"

    def test_a_batch_runs_in_the_order_of_its_subscribers_key(
        self, url: str, pool: ConnectionPool[Any], broker: PgmqBroker
    ) -> None:
        sub = subscriber(batch_key=lambda env: f"{99 - int(env.payload['n']):02d}")
        declare_subscribers(broker, lambda: pool, [sub])
        enqueue(broker, sub, [envelope(n) for n in range(5)])
        consumer, batch = self.next_batch(broker, 5)
        deliver_batch(pool, broker, sub, batch)
        consumer.ack(batch)
        consumer.close()
        assert [n for n, _, _ in effects(url)] == [4, 3, 2, 1, 0]
        assert len({txid for _, _, txid in effects(url)}) == 1

    def test_a_failed_batch_rolls_back_and_its_messages_come_back_one_by_one(
        self, url: str, pool: ConnectionPool[Any], broker: PgmqBroker
    ) -> None:
        sub = subscriber()
        declare_subscribers(broker, lambda: pool, [sub])
        enqueue(broker, sub, [envelope(n, poison=(n == 2)) for n in range(4)])
        consumer, batch = self.next_batch(broker, 4)
        with pytest.raises(RuntimeError, match="poison item 2"):
            deliver_batch(pool, broker, sub, batch)
        assert not batch.done and effects(url) == []  # items 0 and 1 rolled back too
        consumer.ack(batch)  # what the worker does after the batch actor returns

        again = [next(consumer) for _ in range(4)]
        assert all(type(m) is PgmqMessageProxy for m in again), again
        assert sorted(m.msg_id for m in again) == sorted(batch.msg_ids)
        assert {m.stored.read_ct for m in again} == {2}
        consumer.requeue(again)
        consumer.close()

    def test_a_batched_queue_prefetches_two_full_batches(
        self, pool: ConnectionPool[Any], broker: PgmqBroker
    ) -> None:
        declare_subscribers(broker, lambda: pool, [subscriber(batch_size=16)])
        consumer = broker.consume(QUEUE, prefetch=4, timeout=100)
        assert consumer.prefetch == 32  # Dramatiq asked for 4 (twice its threads)
        consumer.close()

    def test_batch_size_one_delivers_each_message_alone(
        self, url: str, pool: ConnectionPool[Any], broker: PgmqBroker
    ) -> None:
        sub = subscriber(batch_size=1)
        declare_subscribers(broker, lambda: pool, [sub])
        assert broker.batching(QUEUE) is None
        enqueue(broker, sub, [envelope(n) for n in range(3)])
        consumer = broker.consume(QUEUE, prefetch=3, timeout=1000)
        delivered = [next(consumer) for _ in range(3)]
        assert all(type(m) is PgmqMessageProxy for m in delivered)
        consumer.requeue(delivered)
        consumer.close()

    def test_a_batch_size_below_one_is_refused(self) -> None:
        with pytest.raises(ValueError, match="batch_size"):
            subscriber(batch_size=0)
