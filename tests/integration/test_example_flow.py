"""The platform end to end with the example order saga: log → relay → pgmq → Dramatiq worker
→ transactional handlers → saga, on real PostgreSQL with a real worker."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from haengbok.logs import configure_logging, reset_logging
from haengbok.settings import Settings
from haengbok.worker import WorkerProcess
from outbox.envelope import MessageContext
from outbox.log import append
from outbox.sagas import SagaRunner, to_new_message
from sql import query
from tests.example import handlers
from tests.example.shop import OrderPlaced, OrderSaga, StockReserved
from tests.waiting import wait_until

SETTINGS = replace(
    Settings(),
    worker_threads=4,
    relay_idle_poll_seconds=0.2,
    saga_deadline_poll_seconds=0.1,
    min_backoff_ms=10,
    max_backoff_ms=50,
)


@pytest.fixture
def worker(database_url: str) -> Iterator[WorkerProcess]:
    with psycopg.connect(database_url) as conn:
        conn.execute(handlers.SCHEMA)
    proc = WorkerProcess(SETTINGS, database_url, subscribers=handlers.subscribers())
    proc.start()
    yield proc
    proc.stop(timeout_seconds=5)


def place(url: str, amount: int, deadline_ms: int = 60_000) -> tuple[uuid.UUID, uuid.UUID]:
    order_id, ctx = uuid.uuid4(), MessageContext.new("alice")
    with psycopg.connect(url) as conn:
        append(conn, [to_new_message(OrderPlaced(order_id, amount, deadline_ms))], ctx)
        conn.execute("SELECT pg_notify('haengbok_outbox', '')")
    return order_id, ctx.correlation_id


def saga(url: str, order_id: uuid.UUID) -> dict[str, Any] | None:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT * FROM saga.instance WHERE saga_id = %s", [order_id]).fetchone()


def settled(url: str, order_id: uuid.UUID, status: str) -> dict[str, Any] | None:
    row = saga(url, order_id)
    return row if row and row["status"] == status else None


def stock_row(url: str, order_id: uuid.UUID) -> tuple[Any, ...] | None:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT reserved, changes FROM public.shop_stock WHERE order_id = %s", [order_id]
        ).fetchone()


class TestHappyPath:
    def test_order_completes_and_every_hop_carries_the_correlation_id(
        self, database_url: str, worker: WorkerProcess
    ) -> None:
        order_id, correlation = place(database_url, 500)
        wait_until(lambda: settled(database_url, order_id, "COMPLETED"), message="saga completes")
        assert stock_row(database_url, order_id) == (True, 1)
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT type, correlation_id, event_id, causation_id FROM outbox.event"
                " WHERE correlation_id = %s ORDER BY position",
                [correlation],
            ).fetchall()
        types = [r[0] for r in rows]
        assert types == [
            "shop.OrderPlaced", "stock.ReserveStock", "stock.StockReserved",
            "pay.ChargePayment", "pay.PaymentCharged",
        ]  # fmt: skip
        ids = {r[2] for r in rows}
        assert all(r[3] in ids for r in rows[1:]), "each message is caused by an earlier one"

    def test_deadlines_of_finished_steps_are_deleted_not_left_to_fire(
        self, database_url: str, worker: WorkerProcess
    ) -> None:
        # Each step schedules a deadline (60 s here); as the saga moves on, the previous one is
        # deleted in the same transaction, so nothing is left to be delivered and ignored.
        order_id, _ = place(database_url, 500)
        row = wait_until(lambda: settled(database_url, order_id, "COMPLETED"))
        assert row["deadline_msg_id"] is None
        queue = next(s.route.queue_name for s in worker.subscribers if s.name.startswith("saga_"))
        assert worker.broker.queue_length(queue) == 0


class TestLogs:
    def test_handler_lines_carry_the_correlation_id_of_the_request(
        self, database_url: str, worker: WorkerProcess
    ) -> None:
        buffer = io.StringIO()
        configure_logging(replace(SETTINGS, log_json=True), stream=buffer)
        try:
            order_id, correlation = place(database_url, 300)
            wait_until(lambda: settled(database_url, order_id, "COMPLETED"))
        finally:
            reset_logging()
        lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
        charging = [line for line in lines if line.get("event") == "charging"]
        assert charging, lines
        assert charging[0]["correlation_id"] == str(correlation)
        assert charging[0]["message_type"] == "pay.ChargePayment"


class TestCompensation:
    def test_declined_payment_releases_the_stock_and_compensates(
        self, database_url: str, worker: WorkerProcess
    ) -> None:
        order_id, _ = place(database_url, 5000)
        row = wait_until(lambda: settled(database_url, order_id, "COMPENSATED"))
        assert row["state"]["failure_reason"] == "over the card limit"
        assert stock_row(database_url, order_id) == (False, 2)


class TestDeadline:
    def test_a_context_that_never_answers_trips_the_deadline(
        self, database_url: str, worker: WorkerProcess
    ) -> None:
        order_id = uuid.uuid4()
        with psycopg.connect(database_url) as conn:
            conn.execute("INSERT INTO public.shop_ignored_orders VALUES (%s)", [order_id])
            append(conn, [to_new_message(OrderPlaced(order_id, 500, 300))], MessageContext.new())
        row = wait_until(lambda: settled(database_url, order_id, "COMPENSATED"))
        assert "deadline 'stock' passed" in row["state"]["failure_reason"]
        assert stock_row(database_url, order_id) is None


class TestParking:
    def test_a_message_that_makes_no_sense_parks_the_saga_with_its_reason(
        self, database_url: str, worker: WorkerProcess
    ) -> None:
        order_id, _ = place(database_url, 500)
        wait_until(lambda: settled(database_url, order_id, "COMPLETED"))
        with psycopg.connect(database_url) as conn:
            # A stray duplicate from a misbehaving context, as a new event on its stream.
            append(conn, [to_new_message(StockReserved(order_id))], MessageContext.new())
        row = wait_until(lambda: settled(database_url, order_id, "PARKED"))
        assert row["parked_reason"] == "stock reserved while done"

    @pytest.mark.parametrize("saga_batch", [1, 8], ids=["alone", "in batches"])
    def test_a_message_for_a_saga_parked_on_a_dead_letter_waits_and_runs_once_it_resumes(
        self, database_url: str, saga_batch: int, caplog: pytest.LogCaptureFixture
    ) -> None:
        with psycopg.connect(database_url) as conn:
            conn.execute(handlers.SCHEMA)
        subscribers = [
            SagaRunner(OrderSaga()).subscriber(batch_size=saga_batch),
            *handlers.subscribers()[1:],
        ]
        worker = WorkerProcess(SETTINGS, database_url, subscribers=subscribers)
        worker.start()
        try:
            self._waits_and_runs_once_resumed(database_url, caplog)
        finally:
            worker.stop(timeout_seconds=5)

    def _waits_and_runs_once_resumed(
        self, database_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        # The stock context never answers; the saga is then parked as saga.park_waiting parks
        # it when its command is dead-lettered. The reply comes while it is parked.
        order_id = uuid.uuid4()
        with psycopg.connect(database_url) as conn:
            conn.execute("INSERT INTO public.shop_ignored_orders VALUES (%s)", [order_id])
            append(conn, [to_new_message(OrderPlaced(order_id, 500, 60_000))], MessageContext.new())
        row = wait_until(lambda: settled(database_url, order_id, "RUNNING"))
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE saga.instance SET status = 'PARKED', parked_from = 'RUNNING',"
                " parked_reason = 'its command is parked', deadline_at = NULL,"
                " version = version + 1 WHERE saga_id = %s",
                [order_id],
            )
            append(conn, [to_new_message(StockReserved(order_id))], MessageContext.new())
        caplog.set_level("WARNING", logger="outbox.retries")
        wait_until(
            lambda: sum("SagaParked" in r.getMessage() for r in caplog.records) >= 2,
            message="the reply is retried, not dropped",
        )
        assert settled(database_url, order_id, "PARKED") is not None
        assert "kept for it" in next(r.getMessage() for r in caplog.records if "SagaParked" in
                                     r.getMessage())  # fmt: skip

        with psycopg.connect(database_url) as conn:  # what re-queueing the command does
            conn.execute(query("saga.resume_parked"),
                         {"saga_id": order_id, "saga_type": row["saga_type"]})  # fmt: skip
        done = wait_until(lambda: settled(database_url, order_id, "COMPLETED"), timeout=20)
        assert done["step"] is not None
        with psycopg.connect(database_url) as conn:
            parked = conn.execute("SELECT count(*) FROM ops.parked_message").fetchone()
        assert parked == (0,), "a wait, never a dead letter"

    def test_a_message_for_a_saga_its_definition_parked_is_parked_itself_not_dropped(
        self, database_url: str, worker: WorkerProcess
    ) -> None:
        order_id, _ = place(database_url, 500)
        wait_until(lambda: settled(database_url, order_id, "COMPLETED"))
        with psycopg.connect(database_url) as conn:
            append(conn, [to_new_message(StockReserved(order_id))], MessageContext.new())
        wait_until(lambda: settled(database_url, order_id, "PARKED"))
        with psycopg.connect(database_url) as conn:
            append(conn, [to_new_message(StockReserved(order_id))], MessageContext.new())

        def parked_reason() -> str | None:
            with psycopg.connect(database_url) as conn:
                found = conn.execute("SELECT error FROM ops.parked_message").fetchone()
            return None if found is None else str(found[0])

        reason = wait_until(parked_reason, timeout=20, message="the message is dead-lettered")
        assert f"saga {order_id} is parked (stock reserved while done)" in reason
        assert "re-queue this message once the saga can go on" in reason
        assert settled(database_url, order_id, "PARKED")["parked_reason"] == (
            "stock reserved while done"
        )
