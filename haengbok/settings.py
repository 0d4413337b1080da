"""Settings read once from the environment (12-factor); nothing connects at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to know; built by ``Settings.from_env()`` or by tests."""

    database_url: str | None = None
    data_dir: Path = field(default_factory=lambda: PROJECT_ROOT / ".pgdata")
    database_name: str = "haengbok"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    jwt_secret: str = "dev-only-secret-change-me-in-production-0123456789"
    jwt_issuer: str = "haengbok"
    jwt_audience: str = "haengbok-api"
    worker_processes: int = 1
    worker_threads: int = 8
    # CPU priority (nice, 0-19) of worker processes: on a host shared with the API, the API
    # answers first under overload and the queues hold the burst (``haengbok.worker``).
    worker_nice: int = 19
    # How long an idle Dramatiq consumer waits before checking for shutdown (ms).
    worker_idle_timeout_ms: int = 250
    relay_batch_size: int = 500
    relay_idle_poll_seconds: float = 0.5
    # After a batch that found work, the next starts no sooner than this (0: when woken).
    relay_min_interval_seconds: float = 0.0
    # While relay batches average relay_busy_rows rows or more (the machine is too busy for the
    # relay to keep up at once), batches start this far apart (outbox.pacing; 0: never).
    relay_busy_interval_seconds: float = 0.05
    relay_busy_rows: float = 8.0
    # Shortest time between projection rounds that catch up: events arriving meanwhile share
    # the next round's transaction (read models lag by up to this much more).
    projection_round_interval_seconds: float = 0.05
    # Messages run per transaction by subscribers that batch (1: each alone).
    consumer_batch_size: int = 32
    # Longest sleep of a worker's saga deadline scheduler: how late a deadline fires at worst.
    saga_deadline_poll_seconds: float = 1.0
    # Seconds a read pgmq message stays invisible; must exceed the actor time limit.
    visibility_timeout_seconds: int = 60
    actor_time_limit_seconds: int = 30
    max_retries: int = 5
    min_backoff_ms: int = 200
    # Liveness (haengbok.heartbeat): the file a worker touches while it makes progress (None:
    # no heartbeat), how often, and how old it may be before the worker counts as stuck.
    heartbeat_file: Path | None = None
    heartbeat_interval_seconds: float = 5.0
    heartbeat_stale_seconds: float = 30.0
    # A worker's own Prometheus metrics (haengbok.worker_metrics): None serves none; 0 picks a
    # free port (tests). The host defaults to loopback like the API's; a pod sets 0.0.0.0.
    worker_metrics_port: int | None = None
    worker_metrics_host: str = "127.0.0.1"
    max_backoff_ms: int = 30_000
    read_wait_max_seconds: float = 5.0
    # Requests of one API process that may wait for a read model at once (min_position); each
    # holds a pooled connection meanwhile, so keep it well below pool_max_size. Others answer
    # at once with X-Read-Model-Stale.
    read_wait_max_concurrent: int = 4
    max_request_body_bytes: int = 64 * 1024
    pool_min_size: int = 2
    pool_max_size: int = 10
    log_json: bool = False
    drain_seconds: float = 0.0
    # New reservations are refused (503) while the saga's, the deposit's or the
    # recommendation's queue holds more messages than this, or one older than this many seconds.
    shed_queue_max_depth: int = 50_000
    shed_queue_max_age_seconds: float = 60.0
    # How long a reservation saga waits for the deposit or recommendation context (seconds).
    dining_step_deadline_seconds: float = 600.0
    # Kubernetes kills a pod 30 s after SIGTERM; finish in-flight messages well before that.
    shutdown_grace_seconds: float = 20.0
    # The payment provider (the sandbox that `haengbok up` starts, unless this is set).
    payment_url: str = "http://127.0.0.1:8010"
    payment_sandbox_port: int = 8010
    payment_connect_timeout_seconds: float = 2.0
    # Well below actor_time_limit_seconds: a slow provider must not get the handler killed.
    payment_read_timeout_seconds: float = 5.0
    # Consecutive failures that open the circuit, and how long it stays open before a trial.
    payment_breaker_failures: int = 5
    payment_breaker_cool_down_seconds: float = 30.0

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            data_dir=Path(env.get("HAENGBOK_DATA_DIR", str(PROJECT_ROOT / ".pgdata"))),
            api_host=env.get("HAENGBOK_API_HOST", "127.0.0.1"),
            api_port=_int("HAENGBOK_API_PORT", 8000),
            jwt_secret=env.get("HAENGBOK_JWT_SECRET", cls.jwt_secret),
            worker_processes=_int("HAENGBOK_WORKER_PROCESSES", 1),
            worker_threads=_int("HAENGBOK_WORKER_THREADS", 8),
            worker_nice=_int("HAENGBOK_WORKER_NICE", cls.worker_nice),
            relay_batch_size=_int("HAENGBOK_RELAY_BATCH_SIZE", 500),
            relay_idle_poll_seconds=_float("HAENGBOK_RELAY_IDLE_POLL_SECONDS", 0.5),
            relay_min_interval_seconds=_float("HAENGBOK_RELAY_MIN_INTERVAL_SECONDS", 0.0),
            relay_busy_interval_seconds=_float(
                "HAENGBOK_RELAY_BUSY_INTERVAL_SECONDS", cls.relay_busy_interval_seconds
            ),
            relay_busy_rows=_float("HAENGBOK_RELAY_BUSY_ROWS", cls.relay_busy_rows),
            projection_round_interval_seconds=_float(
                "HAENGBOK_PROJECTION_ROUND_INTERVAL_SECONDS", 0.05
            ),
            saga_deadline_poll_seconds=_float("HAENGBOK_SAGA_DEADLINE_POLL_SECONDS", 1.0),
            consumer_batch_size=_int("HAENGBOK_CONSUMER_BATCH_SIZE", 32),
            visibility_timeout_seconds=_int("HAENGBOK_VISIBILITY_TIMEOUT_SECONDS", 60),
            actor_time_limit_seconds=_int("HAENGBOK_ACTOR_TIME_LIMIT_SECONDS", 30),
            max_retries=_int("HAENGBOK_MAX_RETRIES", 5),
            heartbeat_file=Path(env["HAENGBOK_HEARTBEAT_FILE"])
            if env.get("HAENGBOK_HEARTBEAT_FILE")
            else None,
            heartbeat_interval_seconds=_float(
                "HAENGBOK_HEARTBEAT_INTERVAL_SECONDS", cls.heartbeat_interval_seconds
            ),
            heartbeat_stale_seconds=_float(
                "HAENGBOK_HEARTBEAT_STALE_SECONDS", cls.heartbeat_stale_seconds
            ),
            worker_metrics_port=int(env["HAENGBOK_WORKER_METRICS_PORT"])
            if env.get("HAENGBOK_WORKER_METRICS_PORT")
            else None,
            worker_metrics_host=env.get("HAENGBOK_WORKER_METRICS_HOST") or cls.worker_metrics_host,
            pool_max_size=_int("HAENGBOK_POOL_MAX_SIZE", 10),
            read_wait_max_seconds=_float(
                "HAENGBOK_READ_WAIT_MAX_SECONDS", cls.read_wait_max_seconds
            ),
            read_wait_max_concurrent=_int(
                "HAENGBOK_READ_WAIT_MAX_CONCURRENT", cls.read_wait_max_concurrent
            ),
            log_json=env.get("HAENGBOK_LOG_JSON", "") in ("1", "true", "yes"),
            drain_seconds=_float("HAENGBOK_DRAIN_SECONDS", 0.0),
            shutdown_grace_seconds=_float("HAENGBOK_SHUTDOWN_GRACE_SECONDS", 20.0),
            shed_queue_max_depth=_int("HAENGBOK_SHED_QUEUE_MAX_DEPTH", cls.shed_queue_max_depth),
            shed_queue_max_age_seconds=_float(
                "HAENGBOK_SHED_QUEUE_MAX_AGE_SECONDS", cls.shed_queue_max_age_seconds
            ),
            dining_step_deadline_seconds=_float("HAENGBOK_DINING_STEP_DEADLINE_SECONDS", 600.0),
            payment_url=env.get("HAENGBOK_PAYMENT_URL") or cls.payment_url,
            payment_sandbox_port=_int("HAENGBOK_PAYMENT_SANDBOX_PORT", 8010),
            payment_connect_timeout_seconds=_float("HAENGBOK_PAYMENT_CONNECT_TIMEOUT_SECONDS", 2.0),
            payment_read_timeout_seconds=_float("HAENGBOK_PAYMENT_READ_TIMEOUT_SECONDS", 5.0),
            payment_breaker_failures=_int("HAENGBOK_PAYMENT_BREAKER_FAILURES", 5),
            payment_breaker_cool_down_seconds=_float(
                "HAENGBOK_PAYMENT_BREAKER_COOL_DOWN_SECONDS", 30.0
            ),
        )
