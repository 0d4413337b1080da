"""One worker process: Dramatiq worker threads on the pgmq broker, plus the relay, the
projection runner and the saga deadline scheduler on threads of their own (every worker process
runs them; advisory locks make one relay and one projection runner do the work at a time, and
another takes over when that process dies; schedulers split due deadlines by row locks)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import dramatiq
import psycopg
from psycopg_pool import ConnectionPool

from haengbok.settings import Settings
from haengbok.worker_metrics import WorkerMetrics
from outbox import wire
from outbox.broker import PgmqBroker
from outbox.consumers import Subscriber, declare_subscribers, routes
from outbox.logcontext import CorrelationLogging
from outbox.pooling import IdleCheck
from outbox.relay import Relay, sync_routes
from outbox.saga_deadlines import DeadlineScheduler
from outbox.wakeup import RelayWakeup
from projections.projector import Projector
from projections.runner import ProjectionRunner

log = logging.getLogger(__name__)

MAX_NICE = 19


def lower_cpu_priority(nice: int) -> int:
    """Give the calling thread, and every thread it starts from now on, the nice value
    ``nice`` (0-19) unless it already has a higher one, and return the value in effect.

    Workers run asynchronous work: when they share a host with the API, a burst of requests
    should be answered first and its messages wait in the queues (queue-based load
    levelling); the workers take the cores back as soon as the API leaves them idle. The
    priority only matters when the CPU is contended. On Linux a nice value belongs to a
    thread and a new thread inherits its creator's, so call this before any thread starts.
    Raising a nice value needs no privilege; lowering one does, so this never lowers it.
    """
    if not 0 <= nice <= MAX_NICE:
        raise ValueError(f"a worker's nice value is 0 to {MAX_NICE}, not {nice}")
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > current:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    return os.getpriority(os.PRIO_PROCESS, 0)


class WorkerProcess:
    """Builds and runs everything a worker process does; ``start()`` then ``stop()``."""

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        *,
        subscribers: Sequence[Subscriber] = (),
        projectors: Sequence[Projector] = (),
        run_relay: bool = True,
    ) -> None:
        wire.use_fast_json()
        self.settings = settings
        self.database_url = database_url
        self.subscribers = list(subscribers)
        self.projectors = list(projectors)
        threads = settings.worker_threads
        idle_check = IdleCheck()
        self.pool: ConnectionPool[Any] = ConnectionPool(
            database_url,
            min_size=1,
            max_size=threads + 2,
            open=False,
            name="haengbok-handlers",
            # After a database restart the idle connections are dead: those are checked on
            # checkout (a round trip), the ones in use a moment ago are not (outbox.pooling).
            check=idle_check.check,
            kwargs={"application_name": "haengbok-worker"},
        )
        idle_check.watch(self.pool)  # one broken connection: check all the idle ones at once
        self.broker = PgmqBroker(
            database_url,
            ordered_queues=[s.route.queue_name for s in self.subscribers if s.ordered],
            visibility_timeout_seconds=settings.visibility_timeout_seconds,
            actor_time_limit_seconds=settings.actor_time_limit_seconds,
            max_retries=settings.max_retries,
            min_backoff_ms=settings.min_backoff_ms,
            max_backoff_ms=settings.max_backoff_ms,
            pool_max_size=threads + 2,
        )
        self.broker.add_middleware(CorrelationLogging(), before=type(self.broker.middleware[0]))
        self.metrics = WorkerMetrics()
        self.broker.add_middleware(self.metrics.middleware)
        #: The port the worker's own metrics are served on, once started (None: not served).
        self.metrics_port: int | None = None
        # One NOTIFY for the relay per few milliseconds of commits, not one per commit.
        self.wakeup = RelayWakeup(
            lambda: psycopg.connect(
                database_url, autocommit=True, application_name="haengbok-relay-wakeup"
            )
        )
        self.actors = declare_subscribers(
            self.broker, lambda: self.pool, self.subscribers, self.wakeup.poke
        )
        self.relay = (
            Relay(
                self.pool,
                database_url,
                batch_size=settings.relay_batch_size,
                idle_poll_seconds=settings.relay_idle_poll_seconds,
                min_interval_seconds=settings.relay_min_interval_seconds,
                busy_interval_seconds=settings.relay_busy_interval_seconds,
                busy_rows=settings.relay_busy_rows,
            )
            if run_relay
            else None
        )
        self.deadlines = DeadlineScheduler(
            self.pool,
            self.broker,
            self.subscribers,
            poll_seconds=settings.saga_deadline_poll_seconds,
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._worker: dramatiq.Worker | None = None
        self.metrics.watch(self.threads_alive, self.relay)

    def start(self) -> None:
        # First: a port that cannot be had stops the start before any message is taken.
        port = self.settings.worker_metrics_port
        if port is not None:
            self.metrics_port = self.metrics.serve(self.settings.worker_metrics_host, port)
        self.pool.open(wait=True, timeout=30)
        with self.pool.connection() as conn, conn.transaction():
            sync_routes(conn, routes(self.subscribers))
        self.wakeup.start()
        self._worker = dramatiq.Worker(
            self.broker,
            worker_threads=self.settings.worker_threads,
            worker_timeout=self.settings.worker_idle_timeout_ms,
        )
        self._worker.start()
        if self.relay is not None:
            self._spawn("relay", self.relay.run)
        if self.deadlines.saga_types:
            self._spawn("saga-deadlines", self.deadlines.run)
        if self.projectors:
            runner = ProjectionRunner(
                self._connect,
                self.projectors,
                round_interval=self.settings.projection_round_interval_seconds,
            )
            self._spawn("projections", runner.run)
        log.info(
            "worker started: %d subscribers, %d projectors, relay=%s, metrics=%s",
            len(self.subscribers), len(self.projectors), self.relay is not None,
            f"http://{self.settings.worker_metrics_host}:{self.metrics_port}/metrics"
            if self.metrics_port is not None else "off",
        )  # fmt: skip

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.database_url, application_name="haengbok-projections")

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def threads_alive(self) -> bool:
        """Whether every thread the work depends on still runs: Dramatiq's consumer and worker
        threads, the relay, the deadline scheduler and the projection runner (the heartbeat's
        check, ``haengbok.heartbeat``)."""
        if self._worker is None or self._stop.is_set():
            return False
        threads = [*self._worker.consumers.values(), *self._worker.workers, *self._threads]
        return all(thread.is_alive() for thread in threads)

    def stop(self, timeout_seconds: float = 20.0) -> None:
        """Finish in-flight messages (up to the timeout), then close everything."""
        self._stop.set()
        if self._worker is not None:
            self._worker.stop(timeout=int(timeout_seconds * 1000))
        for thread in self._threads:
            thread.join(timeout=timeout_seconds)
        self.wakeup.stop()
        self.broker.close()
        self.pool.close()
        self.metrics.close()
