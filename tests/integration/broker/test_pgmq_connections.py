"""PgmqBroker and its connections: killed backends, an unreachable database, LISTEN wake-ups,
messages written by another writer (the relay), and leases of messages that wait in memory."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import dramatiq.worker
import psycopg
import pytest
from dramatiq.errors import ConnectionClosed
from psycopg.types.json import Jsonb

from haengbok.dburl import database_of
from outbox import wire
from outbox.broker import PgmqBroker
from outbox.broker_consumer import PgmqConsumer
from tests.integration.broker.conftest import running_worker
from tests.waiting import wait_until

MakeBroker = Callable[..., PgmqBroker]


def _kill_backends(admin_url: str, database_url: str) -> int:
    """Terminate every session on the test database (the broker's pool and LISTEN ones)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            [database_of(database_url)],
        ).fetchone()
    return int(row[0]) if row else 0


def _actor(broker: PgmqBroker, fn: Callable[..., Any], **options: Any) -> dramatiq.Actor[Any, Any]:
    queue = f"q_{uuid.uuid4().hex[:8]}"
    return dramatiq.actor(actor_name=queue, queue_name=queue, broker=broker, **options)(fn)


@pytest.fixture
def quick_consumer_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dramatiq waits 3 s before it restarts a consumer after ConnectionClosed."""
    monkeypatch.setattr(dramatiq.worker, "CONSUMER_RESTART_DELAY_SECS", 0.1)


class TestConnectionLoss:
    @pytest.mark.usefixtures("quick_consumer_restart")
    def test_every_message_is_processed_although_backends_are_killed_meanwhile(
        self, make_pgmq_broker: MakeBroker, database_url: str, admin_url: str
    ) -> None:
        broker = make_pgmq_broker(visibility_timeout_seconds=3, actor_time_limit_seconds=2)
        done: set[int] = set()
        lock = threading.Lock()

        def work(n: int) -> None:
            time.sleep(0.005)
            with lock:
                done.add(n)

        actor = _actor(broker, work, max_retries=10, min_backoff=10, max_backoff=50)
        for n in range(400):
            actor.send(n)
        with running_worker(broker, threads=4):
            for round_ in range(1, 5):
                target = round_ * 60
                wait_until(lambda: len(done) >= target, timeout=15)  # noqa: B023
                # As soon as the broker has reconnected something, kill it again.
                wait_until(lambda: _kill_backends(admin_url, database_url), timeout=5)
            broker.join(actor.queue_name, timeout=20_000)
            wait_until(lambda: broker.listener.connections >= 2, timeout=5)
        assert done == set(range(400))

    def test_connections_handed_back_dead_after_the_pool_check_are_retried_past(
        self, make_pgmq_broker: MakeBroker, database_url: str, admin_url: str
    ) -> None:
        # Other threads hold connections when every session is dropped; they hand them back
        # just after the first failure's pool check, each still looking idle.
        broker = make_pgmq_broker(pool_min_size=1, pool_max_size=4)
        broker.run(lambda conn: None)
        pool = broker._process().pool
        held = [pool.getconn() for _ in range(4)]
        pool.putconn(held.pop())  # the idle one the first attempt gets
        assert _kill_backends(admin_url, database_url) >= 4
        original_check = pool.check

        def check_then_hand_back() -> None:
            original_check()
            for conn in held:
                pool.putconn(conn)

        pool.check = check_then_hand_back  # type: ignore[method-assign]
        used: list[int] = []

        def work(conn: psycopg.Connection[Any]) -> int:
            used.append(id(conn))
            row = conn.execute("SELECT 1").fetchone()
            return int(row[0]) if row else 0

        assert broker.run(work) == 1
        assert len(used) >= 2, "the first connection tried was a dead one"

    def test_an_error_on_a_working_connection_is_retried_once_only(
        self, make_pgmq_broker: MakeBroker
    ) -> None:
        broker = make_pgmq_broker()
        calls: list[int] = []

        def cancelled(conn: psycopg.Connection[Any]) -> None:
            calls.append(1)
            conn.execute("SET statement_timeout = 1")
            try:
                conn.execute("SELECT pg_sleep(1)")  # QueryCanceled: an OperationalError
            finally:
                conn.execute("RESET statement_timeout")

        with pytest.raises(ConnectionClosed):
            broker.run(cancelled)
        assert len(calls) == 2

    def test_an_unreachable_database_surfaces_as_connection_closed(
        self, make_pgmq_broker: MakeBroker, database_url: str, admin_url: str
    ) -> None:
        broker = make_pgmq_broker(pool_timeout_seconds=0.5)
        broker.declare_queue("lost")
        consumer = broker.consume("lost", prefetch=4, timeout=200)
        assert next(consumer) is None
        name = database_of(database_url)
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            try:
                _kill_backends(admin_url, database_url)
                with pytest.raises(ConnectionClosed):
                    next(consumer)
            finally:
                admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        wait_until(lambda: _consumes(broker, "lost"), timeout=15, message="the pool recovers")


def _consumes(broker: PgmqBroker, queue: str) -> bool:
    try:
        return next(broker.consume(queue, prefetch=1, timeout=50)) is None
    except ConnectionClosed:
        return False


@pytest.fixture
def relay_send(database_url: str) -> Iterator[Callable[[str, list[Any], str | None], None]]:
    """Write a message the way the relay does: raw pgmq.send_batch in the wire format, then
    NOTIFY; no broker involved."""
    conn = psycopg.connect(database_url, autocommit=True)

    def send(queue: str, args: list[Any], group: str | None) -> None:
        body = wire.message_body(
            queue_name=queue, actor_name=queue, args=args, message_id=str(uuid.uuid4()),
            message_timestamp=int(time.time() * 1000),
        )  # fmt: skip
        conn.execute(
            "SELECT pgmq.send_batch(%s, %s::jsonb[], %s::jsonb[])",
            [queue, [Jsonb(body)], [Jsonb(wire.headers(group, "corr-1"))]],
        )
        conn.execute("SELECT pg_notify(%s, '')", [wire.notify_channel(queue)])

    yield send
    conn.close()


class TestWakeUps:
    def test_an_idle_worker_wakes_on_notify_long_before_its_next_poll(
        self, make_pgmq_broker: MakeBroker, relay_send: Callable[..., None]
    ) -> None:
        broker = make_pgmq_broker(poll_min_ms=1000, poll_max_ms=10_000)
        ran: list[tuple[list[Any], float]] = []
        actor = _actor(broker, lambda *args: ran.append((list(args), time.monotonic())))
        with running_worker(broker) as worker:
            thread = worker.consumers[actor.queue_name]
            consumer = wait_until(lambda: thread.consumer, timeout=5)
            assert isinstance(consumer, PgmqConsumer)
            wait_until(lambda: consumer.empty_reads >= 1 and broker.listener.connections, timeout=5)

            sent_at = time.monotonic()
            relay_send(actor.queue_name, ["from the relay", {"k": 1}], "stream-1")
            wait_until(lambda: ran, timeout=1.5)
            assert ran[0][0] == ["from the relay", {"k": 1}]
            assert ran[0][1] - sent_at < 0.5, "woken by NOTIFY, not by a poll (>= 2 s away)"

            with psycopg.connect(broker_url(broker), autocommit=True) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", [broker.listener.backend_pid])
            wait_until(lambda: broker.listener.connections >= 2, timeout=5)
            sent_at = time.monotonic()
            relay_send(actor.queue_name, ["after reconnect"], None)
            wait_until(lambda: len(ran) == 2, timeout=1.5)
            assert ran[1][1] - sent_at < 0.5, "the LISTEN connection came back by itself"


def broker_url(broker: PgmqBroker) -> str:
    conninfo = broker._connector.conninfo
    assert conninfo is not None
    return conninfo


def _in_forked_child(broker: PgmqBroker, queue: str, report: Any) -> None:
    report.send(broker.run(lambda conn: conn.info.backend_pid))
    broker.enqueue(
        dramatiq.Message(queue_name=queue, actor_name="a", args=(), kwargs={}, options={})
    )


class TestFork:
    def test_a_forked_child_opens_its_own_connections_and_leaves_the_parents_alone(
        self, make_pgmq_broker: MakeBroker
    ) -> None:
        broker = make_pgmq_broker(pool_min_size=1, pool_max_size=1)
        broker.declare_queue("forked")
        parent_backend = broker.run(lambda conn: conn.info.backend_pid)
        context = multiprocessing.get_context("fork")
        receive, report = context.Pipe(duplex=False)
        child = context.Process(target=_in_forked_child, args=(broker, "forked", report))
        child.start()
        child.join(10)
        assert child.exitcode == 0
        assert receive.recv() != parent_backend
        assert broker.run(lambda conn: conn.info.backend_pid) == parent_backend
        assert broker.queue_length("forked") == 1


class TestLeases:
    def test_a_message_that_waited_in_memory_does_not_run_twice(
        self, make_pgmq_broker: MakeBroker
    ) -> None:
        broker = make_pgmq_broker(visibility_timeout_seconds=2, actor_time_limit_seconds=1)
        runs: list[int] = []

        def slow(n: int) -> None:
            runs.append(n)
            time.sleep(0.6)

        actor = _actor(broker, slow)
        for n in range(4):
            actor.send(n)
        worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
        worker.queue_prefetch = 4  # all four are read at once; the last waits 1.8 s > 2 s - 1 s
        worker.start()
        try:
            broker.join(actor.queue_name, timeout=10_000)
        finally:
            worker.stop(timeout=10_000)
        assert sorted(runs) == [0, 1, 2, 3]
