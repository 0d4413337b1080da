"""A lost database connection is the infrastructure's failure, not the message's: it is retried
without using up an attempt and is never dead-lettered for it."""

from __future__ import annotations

import threading
from collections.abc import Callable

import dramatiq
import psycopg
from psycopg_pool import PoolTimeout

from domain.payments import PaymentProtocolError, PaymentUnavailable
from outbox.broker import PgmqBroker
from outbox.errors import is_transient
from outbox.parking import list_parked
from sql import queue_query
from tests.integration.broker.conftest import running_worker
from tests.waiting import wait_until

MakeBroker = Callable[..., PgmqBroker]


class TestClassification:
    def test_connection_failures_are_transient_and_bugs_are_not(self) -> None:
        assert is_transient(psycopg.OperationalError("server closed the connection unexpectedly"))
        assert is_transient(PoolTimeout("couldn't get a connection after 10 sec"))
        assert not is_transient(psycopg.errors.QueryCanceled("statement timeout"))
        assert not is_transient(ValueError("bad payload"))

    def test_an_outside_service_that_says_it_is_unavailable_is_transient(self) -> None:
        assert is_transient(PaymentUnavailable("provider answered 503"))
        assert not is_transient(PaymentProtocolError("idempotency key reused"))


class TestTransientFailureRetries:
    def test_more_connection_failures_than_max_retries_still_end_in_success(
        self, make_pgmq_broker: MakeBroker, database_url: str
    ) -> None:
        broker = make_pgmq_broker()
        attempts: list[int] = []
        done = threading.Event()

        @dramatiq.actor(
            broker=broker, queue_name="flaky", max_retries=1, min_backoff=5, max_backoff=20
        )
        def flaky() -> None:
            attempts.append(1)
            if len(attempts) <= 4:  # four failures, one retry allowed: only uncounted ones fit
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            done.set()

        flaky.send()
        with running_worker(broker):
            wait_until(done.is_set, message="the actor finally succeeds")
        assert len(attempts) == 5
        with psycopg.connect(database_url) as conn:
            assert list_parked(conn, "flaky") == []

    def test_a_real_error_still_uses_up_its_attempts(
        self, make_pgmq_broker: MakeBroker, database_url: str
    ) -> None:
        broker = make_pgmq_broker()

        @dramatiq.actor(
            broker=broker, queue_name="broken", max_retries=1, min_backoff=5, max_backoff=20
        )
        def broken() -> None:
            raise ValueError("a bug")

        broken.send()
        with running_worker(broker), psycopg.connect(database_url) as conn:
            parked = wait_until(lambda: list_parked(conn, "broken"), message="parked")
        assert "ValueError: a bug" in parked[0].error


class TestOrderedQueueIndex:
    def test_an_ordered_queue_reads_group_heads_through_its_own_index(
        self, make_pgmq_broker: MakeBroker, database_url: str
    ) -> None:
        broker = make_pgmq_broker(ordered_queues=["fifo_indexed"])
        broker.ensure_queue("fifo_indexed")
        broker.ensure_queue("plain_queue")
        with psycopg.connect(database_url) as conn:
            indexes = {
                r[0]
                for r in conn.execute(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = 'pgmq'"
                ).fetchall()
            }
            conn.execute(
                "INSERT INTO pgmq.q_fifo_indexed (vt, message, headers) SELECT clock_timestamp(),"
                " '{}'::jsonb, jsonb_build_object('x-pgmq-group', 'g' || (i % 3))"
                " FROM generate_series(1, 9) AS i"
            )
            read = queue_query("read_group_heads", "fifo_indexed")
            params = {"queue": "fifo_indexed", "vt": 30, "qty": 10}
            heads = [r[4]["x-pgmq-group"] for r in conn.execute(read, params).fetchall()]
            # The group expression of the read must be the index's, or it cannot be used.
            conn.execute("SET enable_seqscan = off")
            plan = conn.execute(f"EXPLAIN (COSTS OFF) {read}", params).fetchall()
        assert "q_fifo_indexed_group_idx" in indexes
        assert "q_plain_queue_group_idx" not in indexes
        assert heads == ["g1", "g2", "g0"], "one head per group, oldest first"
        assert "q_fifo_indexed_group_idx" in "\n".join(r[0] for r in plan)
