"""Prometheus metrics of one worker process, served on a port of its own.

The API's ``/metrics`` reports the platform's state from the database (queues, relay lag,
projections, sagas, dead letters, breakers): the same figures from every replica, and nothing
stale when a worker dies. What only a worker knows is here: how many messages it ran and how
each ended, how long a delivery took, how large its batches were, whether its threads and relay
run, and the process itself (CPU, memory, garbage collections). One scrape target per worker
process (a pod's port in Kubernetes).

Counting costs a few microseconds per Dramatiq message (a batch counts once), all in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.middleware import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from outbox.broker_message import PgmqBatchProxy

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from outbox.relay import Relay

# A delivery takes milliseconds (a batch tens); the payment call's timeout is seconds.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class MetricsServerError(RuntimeError):
    """The worker's metrics cannot be served as configured; says which setting to change."""


class MessageMetrics(Middleware):
    """Counts and times every message a worker thread runs.

    Outcomes: ``ok``; ``failed`` (the actor raised: the retry policy decides what comes next,
    and ``haengbok_parked_messages`` on the API shows what was parked); ``rolled_back`` (a
    batch whose transaction did not commit: its messages run alone next, so they are counted
    again then); ``skipped`` (a middleware skipped the message).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "haengbok_worker_messages",
            "Messages run by this worker, by queue, actor and outcome (a batch counts each)",
            ("queue", "actor", "outcome"),
            registry=registry,
        )
        self.duration = Histogram(
            "haengbok_worker_delivery_duration_seconds",
            "Time to run one delivery (a single message or a whole batch), by queue and actor",
            ("queue", "actor"),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "haengbok_worker_batch_messages",
            "Messages per batch run in one transaction, by queue",
            ("queue",),
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.in_progress = Gauge(
            "haengbok_worker_messages_in_progress",
            "Messages this worker is running now, by queue",
            ("queue",),
            registry=registry,
        )
        self._running = threading.local()
        # The labelled children by (queue, actor): ``labels()`` takes a lock and builds a key
        # on every call, which was most of this middleware's cost.
        self._series: dict[tuple[str, str], _Series] = {}

    def _of(self, message: Any) -> _Series:
        key = (message.queue_name, message.actor_name)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self, *key)
        return series

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        series, count = self._of(message), _message_count(message)
        series.in_progress.inc(count)
        self._running.started = (perf_counter(), count)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        started = getattr(self._running, "started", None)
        self._running.started = None
        series = self._of(message)
        if isinstance(message, PgmqBatchProxy):
            outcome = "ok" if message.done and exception is None else "rolled_back"
            series.batch_size.observe(len(message.parts))
        else:
            outcome = "ok" if exception is None else "failed"
        series.outcome(outcome).inc(_message_count(message))
        if started is not None:  # None: an earlier middleware failed before this one ran
            began, count = started
            series.duration.observe(perf_counter() - began)
            series.in_progress.dec(count)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        started = getattr(self._running, "started", None)
        self._running.started = None
        series = self._of(message)
        series.outcome("skipped").inc(_message_count(message))
        if started is not None:
            series.in_progress.dec(started[1])


class _Series:
    """One queue and actor's labelled metrics."""

    def __init__(self, metrics: MessageMetrics, queue: str, actor: str) -> None:
        self._metrics, self._queue, self._actor = metrics, queue, actor
        self.in_progress = metrics.in_progress.labels(queue)
        self.duration = metrics.duration.labels(queue, actor)
        self.batch_size = metrics.batch_size.labels(queue)
        self._outcomes: dict[str, Any] = {}

    def outcome(self, outcome: str) -> Any:
        counter = self._outcomes.get(outcome)
        if counter is None:
            counter = self._outcomes[outcome] = self._metrics.messages.labels(
                self._queue, self._actor, outcome
            )
        return counter


def _message_count(message: Any) -> int:
    return len(message.parts) if isinstance(message, PgmqBatchProxy) else 1


class WorkerStateCollector(Collector):
    """Read at scrape time: whether the threads the work depends on run, and the relay's
    leadership and count (the relay is the same in every worker; one leads at a time)."""

    def __init__(self, threads_alive: Callable[[], bool], relay: Relay | None) -> None:
        self._threads_alive = threads_alive
        self._relay = relay

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "haengbok_worker_threads_alive",
            "1 while the Dramatiq consumer and worker threads, the relay, the deadline "
            "scheduler and the projection runner all run (the liveness heartbeat's check)",
            value=1.0 if self._threads_alive() else 0.0,
        )
        if self._relay is not None:
            yield GaugeMetricFamily(
                "haengbok_worker_relay_leading",
                "1 while this process's relay leads (relays at once when woken)",
                value=1.0 if self._relay.standby.leading else 0.0,
            )
            yield CounterMetricFamily(
                "haengbok_worker_relayed_events",
                "Events this process's relay handed to the queues since it started",
                value=self._relay.relayed_total,
            )


class WorkerMetrics:
    """The registry of one worker process, the middleware that fills it, and its HTTP server
    (``serve``/``close``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.middleware = MessageMetrics(self.registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def watch(self, threads_alive: Callable[[], bool], relay: Relay | None) -> None:
        self.registry.register(WorkerStateCollector(threads_alive, relay))

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` (any path, as prometheus_client does) on a daemon thread; returns
        the port (``port`` 0 picks a free one)."""
        if self._server is not None:
            raise RuntimeError("worker metrics are already served")
        if not 0 <= port <= 65535:
            raise MetricsServerError(
                f"HAENGBOK_WORKER_METRICS_PORT must be a port number (0-65535), not {port}"
            )
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsServerError(
                f"cannot serve worker metrics on {host}:{port} ({exc.strerror or exc}): give "
                "each worker process a free HAENGBOK_WORKER_METRICS_PORT of its own "
                "(HAENGBOK_WORKER_METRICS_HOST for the address), or leave it unset"
            ) from exc
        return int(self._server.server_port)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
