"""A worker's own Prometheus metrics, scraped over HTTP from a real worker on real PostgreSQL:
how many messages each subscriber ran and how they ended, delivery times, batch sizes, whether
the threads and the relay run, and the process itself."""

from __future__ import annotations

import socket
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from haengbok.settings import Settings
from haengbok.worker import WorkerProcess
from haengbok.worker_metrics import MetricsServerError
from outbox.consumers import HandlerContext, Subscriber
from outbox.envelope import Envelope, MessageContext, NewMessage
from outbox.log import append
from tests.waiting import wait_until

PING = "probe.Ping"
SETTINGS = replace(
    Settings(),
    worker_threads=2,
    relay_idle_poll_seconds=0.1,
    min_backoff_ms=10,
    max_backoff_ms=20,
    max_retries=1,
    worker_metrics_port=0,
)


def _probe(ctx: HandlerContext, env: Envelope) -> None:
    if env.payload.get("fail"):
        raise ValueError("this ping always fails")
    ctx.conn.execute("INSERT INTO public.probe_seen VALUES (%s)", [env.payload["n"]])


SUBSCRIBERS = [
    Subscriber(
        name="metrics_probe", handles=frozenset({PING}), handler=_probe, ordered=False,
        batch_size=16,
    ),
]  # fmt: skip


@pytest.fixture
def worker(database_url: str) -> Iterator[WorkerProcess]:
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.probe_seen (n integer PRIMARY KEY)")
    proc = WorkerProcess(SETTINGS, database_url, subscribers=SUBSCRIBERS)
    proc.start()
    yield proc
    proc.stop(timeout_seconds=5)


def ping(url: str, payloads: list[dict[str, object]]) -> None:
    with psycopg.connect(url) as conn:
        stream = f"probe-{uuid.uuid4().hex[:8]}"
        append(conn, [NewMessage(PING, stream, p) for p in payloads], MessageContext.new())
        conn.execute("SELECT pg_notify('haengbok_outbox', '')")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # Samples
    """(sample name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape_until(port: int, outcome: str, at_least: float) -> Samples:
    """Scrapes until ``at_least`` messages with ``outcome`` are counted."""

    def enough() -> Samples | None:
        samples = scrape(port)
        return samples if messages(samples, outcome) >= at_least else None

    return wait_until(enough, message=f"{at_least} {outcome} messages counted")


def messages(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], outcome: str) -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "haengbok_worker_messages_total" and ("outcome", outcome) in labels
    )


def seen(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM public.probe_seen").fetchone()
    return int(row[0]) if row else 0


class TestMessages:
    def test_messages_run_in_batches_are_counted_each_and_timed_per_delivery(
        self, database_url: str, worker: WorkerProcess
    ) -> None:
        assert worker.metrics_port is not None
        ping(database_url, [{"n": n} for n in range(10)])
        wait_until(lambda: seen(database_url) == 10, message="all ten pings handled")
        samples = scrape_until(worker.metrics_port, "ok", 10)
        assert messages(samples, "ok") == 10
        queue = SUBSCRIBERS[0].route.queue_name
        batches = samples[("haengbok_worker_batch_messages_count", (("queue", queue),))]
        assert 1 <= batches <= 10
        assert samples[("haengbok_worker_batch_messages_sum", (("queue", queue),))] == 10
        timed = sum(
            value
            for (name, labels), value in samples.items()
            if name == "haengbok_worker_delivery_duration_seconds_count"
            and ("queue", queue) in labels
        )
        assert timed == batches  # one delivery per batch
        assert samples[("haengbok_worker_messages_in_progress", (("queue", queue),))] == 0

    def test_a_failing_message_rolls_its_batch_back_and_fails_alone(
        self, database_url: str, worker: WorkerProcess
    ) -> None:
        ping(database_url, [{"n": 1}, {"n": 2, "fail": True}, {"n": 3}])
        wait_until(lambda: seen(database_url) == 2, message="the two good pings handled alone")
        # max_retries=1: two attempts, the batch's and one alone, then it is parked.
        scrape_until(worker.metrics_port or 0, "failed", 1)
        samples = scrape_until(worker.metrics_port or 0, "ok", 2)
        assert messages(samples, "failed") == 1
        assert messages(samples, "ok") == 2
        assert messages(samples, "rolled_back") >= 1  # the failing ping's batch


class TestProcess:
    def test_threads_relay_and_process_figures_are_reported(
        self, database_url: str, worker: WorkerProcess
    ) -> None:
        ping(database_url, [{"n": n} for n in range(3)])
        wait_until(lambda: seen(database_url) == 3)
        samples = scrape(worker.metrics_port or 0)
        assert samples[("haengbok_worker_threads_alive", ())] == 1
        assert samples[("haengbok_worker_relay_leading", ())] == 1  # the only relay here
        assert samples[("haengbok_worker_relayed_events_total", ())] >= 3
        assert samples[("process_cpu_seconds_total", ())] > 0
        assert samples[("process_resident_memory_bytes", ())] > 0
        assert any(name == "python_gc_collections_total" for name, _ in samples)

    def test_the_server_closes_with_the_worker(self, database_url: str) -> None:
        proc = WorkerProcess(SETTINGS, database_url, subscribers=SUBSCRIBERS)
        proc.start()
        port = proc.metrics_port or 0
        assert scrape(port)[("haengbok_worker_threads_alive", ())] == 1
        proc.stop(timeout_seconds=5)
        with pytest.raises(OSError):
            scrape(port)


class TestPort:
    def test_a_port_in_use_stops_the_start_before_any_message_is_taken(
        self, database_url: str
    ) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            proc = WorkerProcess(
                replace(SETTINGS, worker_metrics_port=port), database_url, subscribers=SUBSCRIBERS
            )
            with pytest.raises(MetricsServerError, match="HAENGBOK_WORKER_METRICS_PORT"):
                proc.start()
            assert not proc.threads_alive()
            assert proc.pool.closed  # never opened: nothing was read
            proc.stop(timeout_seconds=1)

    def test_no_port_serves_nothing(self, database_url: str) -> None:
        proc = WorkerProcess(
            replace(SETTINGS, worker_metrics_port=None), database_url, subscribers=SUBSCRIBERS
        )
        proc.start()
        try:
            assert proc.metrics_port is None
        finally:
            proc.stop(timeout_seconds=5)
