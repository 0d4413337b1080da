"""The saga deadline scheduler and the runtime's side of deadlines, on a real database.

Instances are written straight into saga.instance so each case sets exactly the deadline state
it is about; the messages are read back from the real pgmq queue.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from typing import Any

import dramatiq
import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from outbox import wire
from outbox.broker import PgmqBroker
from outbox.consumers import HandlerContext, Subscriber
from outbox.envelope import Envelope
from outbox.relay import sync_routes
from outbox.saga_deadlines import DeadlineScheduler
from outbox.sagas import DEADLINE_TYPE, SagaRunner
from sql import query
from tests.example.shop import OrderSaga
from tests.integration.outbox.conftest import SAGA_QUEUE
from tests.waiting import wait_until

QUEUE = SAGA_QUEUE


@pytest.fixture
def saga_subscriber(database_url: str) -> Subscriber:
    sub = SagaRunner(OrderSaga()).subscriber()
    with psycopg.connect(database_url) as conn, conn.transaction():
        sync_routes(conn, [sub.route])
    return sub


def scheduler(
    pool: ConnectionPool[Any], broker: PgmqBroker, sub: Subscriber, **options: Any
) -> DeadlineScheduler:
    return DeadlineScheduler(pool, broker, [sub], **options)


def add_instance(
    url: str,
    *,
    due_in: dt.timedelta | None,
    status: str = "RUNNING",
    saga_type: str = "order",
    msg_id: int | None = None,
    msg_at: dt.datetime | None = None,
) -> uuid.UUID:
    saga_id = uuid.uuid4()
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO saga.instance (saga_id, saga_type, status, step, state, completed_steps,"
            " version, correlation_id, parked_reason, deadline_at, deadline_name,"
            " deadline_msg_id, deadline_msg_at)"
            " VALUES (%s, %s, %s, 'reserving_stock', '{\"amount\": 5}', '[]', 3, %s,"
            " CASE WHEN %s = 'PARKED' THEN 'test' END,"
            " CASE WHEN %s::interval IS NOT NULL THEN clock_timestamp() + %s::interval END,"
            " 'stock', %s, %s)",
            [saga_id, saga_type, status, saga_id, status, due_in, due_in, msg_id, msg_at],
        )
    return saga_id


def instance(url: str, saga_id: uuid.UUID) -> dict[str, Any]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM saga.instance WHERE saga_id = %s", [saga_id]).fetchone()
    assert row is not None
    return row


def queued(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT * FROM pgmq.q_{QUEUE} ORDER BY msg_id").fetchall()


PAST = dt.timedelta(seconds=-5)
AHEAD = dt.timedelta(hours=1)


class TestScheduler:
    def test_a_passed_deadline_gets_one_message_for_the_saga_and_the_row_names_it(
        self, database_url: str, pool: ConnectionPool[Any], broker: PgmqBroker,
        saga_subscriber: Subscriber,
    ) -> None:  # fmt: skip
        saga_id = add_instance(database_url, due_in=PAST)
        deadlines = scheduler(pool, broker, saga_subscriber)

        assert deadlines.fire_due() == 1
        assert deadlines.fire_due() == 0  # the row names its message: never sent twice

        [msg] = queued(database_url)
        row = instance(database_url, saga_id)
        assert row["deadline_msg_id"] == msg["msg_id"]
        assert row["deadline_msg_at"] == row["deadline_at"]
        assert row["version"] == 3  # firing is not a step of the saga
        body = msg["message"]
        assert (body["queue_name"], body["actor_name"]) == (QUEUE, saga_subscriber.name)
        env = Envelope.from_json(body["args"][0])
        assert env.type == DEADLINE_TYPE
        assert env.payload == {"saga_id": str(saga_id), "name": "stock", "version": 3}
        assert env.correlation_id == saga_id  # add_instance uses the saga id as correlation
        assert msg["headers"][wire.GROUP_HEADER] == f"deadline-{env.event_id}"

    def test_only_running_instances_of_its_saga_types_whose_deadline_passed_are_sent(
        self, database_url: str, pool: ConnectionPool[Any], broker: PgmqBroker,
        saga_subscriber: Subscriber,
    ) -> None:  # fmt: skip
        due = add_instance(database_url, due_in=PAST)
        add_instance(database_url, due_in=AHEAD)
        add_instance(database_url, due_in=None)
        add_instance(database_url, due_in=PAST, status="COMPENSATING")
        add_instance(database_url, due_in=PAST, status="PARKED")
        add_instance(database_url, due_in=PAST, saga_type="other")
        add_instance(database_url, due_in=PAST, msg_id=999_999, msg_at=dt.datetime.now(dt.UTC))
        deadlines = scheduler(pool, broker, saga_subscriber)

        assert deadlines.fire_due() == 1
        [msg] = queued(database_url)
        assert msg["message"]["args"][0]["payload"]["saga_id"] == str(due)
        remaining = deadlines.seconds_until_next()
        assert remaining is not None and 3500 < remaining <= 3600

    def test_an_instance_held_by_a_handler_is_skipped_and_sent_in_a_later_round(
        self, database_url: str, pool: ConnectionPool[Any], broker: PgmqBroker,
        saga_subscriber: Subscriber,
    ) -> None:  # fmt: skip
        saga_id = add_instance(database_url, due_in=PAST)
        deadlines = scheduler(pool, broker, saga_subscriber)
        with psycopg.connect(database_url) as holder:
            holder.execute("SELECT 1 FROM saga.instance WHERE saga_id = %s FOR UPDATE", [saga_id])
            assert deadlines.fire_due() == 0  # does not wait for the lock either
        assert deadlines.fire_due() == 1
        assert instance(database_url, saga_id)["deadline_msg_id"] is not None

    def test_a_round_that_fails_part_way_sends_and_records_nothing(
        self, database_url: str, pool: ConnectionPool[Any], broker: PgmqBroker,
        saga_subscriber: Subscriber, monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        ids = [add_instance(database_url, due_in=PAST) for _ in range(3)]
        deadlines = scheduler(pool, broker, saga_subscriber)
        real_send = broker.send_in_transaction
        sends = []

        def send_then_die(conn: psycopg.Connection[Any], message: Any, **kw: Any) -> int:
            sends.append(message)
            if len(sends) == 2:
                raise RuntimeError("killed mid-round")
            return real_send(conn, message, **kw)

        monkeypatch.setattr(broker, "send_in_transaction", send_then_die)
        with pytest.raises(RuntimeError):
            deadlines.fire_due()
        assert queued(database_url) == []
        assert all(instance(database_url, i)["deadline_msg_id"] is None for i in ids)

        monkeypatch.setattr(broker, "send_in_transaction", real_send)
        assert deadlines.fire_due() == 3
        assert len(queued(database_url)) == 3

    def test_the_loop_wakes_when_the_next_deadline_falls_not_at_its_next_poll(
        self, database_url: str, pool: ConnectionPool[Any], broker: PgmqBroker,
        saga_subscriber: Subscriber,
    ) -> None:  # fmt: skip
        saga_id = add_instance(database_url, due_in=dt.timedelta(milliseconds=500))
        deadlines = scheduler(pool, broker, saga_subscriber, poll_seconds=60)
        stop = threading.Event()
        thread = threading.Thread(target=deadlines.run, args=(stop,), daemon=True)
        thread.start()
        try:
            # With a 60 s poll this passes only if the loop slept until the deadline.
            wait_until(lambda: instance(database_url, saga_id)["deadline_msg_id"], timeout=10)
        finally:
            stop.set()
            thread.join(timeout=5)
        assert deadlines.fired_total == 1


class TestRuntime:
    """What the saga does with a deadline message (SagaRunner.handle on a real transaction)."""

    def handle(self, url: str, saga_id: uuid.UUID, msg_id: int) -> None:
        runner = SagaRunner(OrderSaga())
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=QUEUE, actor_name="saga_order", args=(), kwargs={},
            options={wire.MSG_ID_OPTION: msg_id},
        )  # fmt: skip
        row = instance(url, saga_id)
        env = Envelope(
            position=0, global_position=None, event_id=uuid.uuid4(), kind="event",
            type=DEADLINE_TYPE, stream=f"saga-{saga_id}", version=row["version"],
            payload={"saga_id": str(saga_id), "name": "stock", "version": row["version"]},
            correlation_id=saga_id, causation_id=None, actor=None,
            occurred_at=dt.datetime.now(dt.UTC),
        )  # fmt: skip
        with psycopg.connect(url) as conn, conn.transaction():
            runner.handle(HandlerContext(conn, env, None, message), env)  # type: ignore[arg-type]

    def test_the_instances_own_message_for_its_current_deadline_fires_it(
        self, database_url: str, pool: ConnectionPool[Any], broker: PgmqBroker,
        saga_subscriber: Subscriber,
    ) -> None:  # fmt: skip
        saga_id = add_instance(database_url, due_in=PAST)
        scheduler(pool, broker, saga_subscriber).fire_due()
        self.handle(database_url, saga_id, instance(database_url, saga_id)["deadline_msg_id"])
        row = instance(database_url, saga_id)
        assert row["status"] == "COMPENSATED"
        assert "deadline 'stock' passed" in row["state"]["failure_reason"]
        assert (row["deadline_at"], row["deadline_msg_id"]) == (None, None)

    def test_a_message_sent_for_an_earlier_deadline_is_released_to_the_scheduler(
        self, database_url: str, pool: ConnectionPool[Any], broker: PgmqBroker,
        saga_subscriber: Subscriber,
    ) -> None:  # fmt: skip
        # As the release before 0009 left it: its message was kept for a later step's
        # deadline and arrives before that one is due.
        sent_for = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        saga_id = add_instance(database_url, due_in=AHEAD, msg_id=4242, msg_at=sent_for)
        self.handle(database_url, saga_id, 4242)
        row = instance(database_url, saga_id)
        assert (row["status"], row["step"]) == ("RUNNING", "reserving_stock")
        assert (row["deadline_msg_id"], row["deadline_msg_at"]) == (None, None)
        assert row["deadline_at"] is not None  # still waiting; the scheduler fires it when due

    def test_a_message_that_is_not_the_instances_own_is_ignored(
        self, database_url: str, pool: ConnectionPool[Any], broker: PgmqBroker,
        saga_subscriber: Subscriber,
    ) -> None:  # fmt: skip
        saga_id = add_instance(database_url, due_in=PAST)
        scheduler(pool, broker, saga_subscriber).fire_due()
        before = instance(database_url, saga_id)
        self.handle(database_url, saga_id, before["deadline_msg_id"] + 1)
        assert instance(database_url, saga_id) == before


class TestQueryPlans:
    def test_due_and_next_deadline_read_the_partial_index_not_every_instance(
        self, database_url: str
    ) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            # Many instances, most without a deadline (confirmed reservations waiting for
            # their visit) or with one far ahead.
            conn.execute(
                "INSERT INTO saga.instance (saga_id, saga_type, status, step, correlation_id,"
                " deadline_at, deadline_name)"
                " SELECT gen_random_uuid(), 'order', 'RUNNING', 's', gen_random_uuid(),"
                " CASE WHEN i % 10 = 0 THEN now() + i * interval '1 second' END, 'stock'"
                " FROM generate_series(1, 20000) i"
            )
            conn.execute("ANALYZE saga.instance")
            params = {"saga_types": ["order"], "limit": 100}
            plans = [
                json.dumps(conn.execute(f"EXPLAIN (FORMAT JSON) {query(name)}", params).fetchone())
                for name in ("saga.due_deadlines", "saga.seconds_until_next_deadline")
            ]
        for plan in plans:
            assert "instance_deadline_due_idx" in plan
            assert "Seq Scan" not in plan
