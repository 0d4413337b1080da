"""A worker process for fault tests: `python -m tests.fault.worker_app` (DATABASE_URL set).

Its handler writes one effect row per handled ping (no unique constraint, so a duplicate
effect would be counted, not hidden) and emits one follow-up event. Pings can ask to block
inside the handler once (so a test can SIGKILL the process mid-handler deterministically) or
to always fail (a poison message). FAULT_BATCH > 1 runs the handler in batches of up to that many
messages per transaction (``outbox.consumers.deliver_batch``).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import psycopg

from haengbok.settings import Settings
from haengbok.signals import stop_on_signals
from haengbok.worker import WorkerProcess
from outbox.consumers import HandlerContext, Subscriber
from outbox.envelope import Envelope, NewMessage

SCHEMA = """
CREATE TABLE IF NOT EXISTS public.fault_effects (
    ping_id text NOT NULL, stream text NOT NULL, version int NOT NULL, pid int NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS public.fault_blocked (ping_id text PRIMARY KEY, pid int NOT NULL);
"""
PING = "fault.Ping"
PONG = "fault.Ponged"


def handle(ctx: HandlerContext, env: Envelope) -> None:
    ping_id = str(env.payload["ping_id"])
    if env.payload.get("poison"):
        raise RuntimeError(f"poison ping {ping_id}")
    if env.payload.get("block_once"):
        # Recorded outside the handler's transaction, so the test sees it while we block.
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as side:
            first = side.execute(
                "INSERT INTO public.fault_blocked VALUES (%s, %s) ON CONFLICT DO NOTHING"
                " RETURNING 1",
                [ping_id, os.getpid()],
            ).fetchone()
        if first:
            time.sleep(600)  # the test kills this process here
    ctx.conn.execute(
        "INSERT INTO public.fault_effects (ping_id, stream, version, pid) VALUES (%s, %s, %s, %s)",
        [ping_id, env.stream, env.version, os.getpid()],
    )
    ctx.emit(NewMessage(PONG, f"pong-{env.stream}", {"ping_id": ping_id}))


def subscribers() -> list[Subscriber]:
    batch_size = int(os.environ.get("FAULT_BATCH", "1"))
    return [
        Subscriber(
            "fault_counter",
            frozenset({PING}),
            handle,
            actor_options={"max_retries": 2},
            batch_size=batch_size,
        )
    ]


def main() -> None:
    settings = dataclasses.replace(
        Settings.from_env(),
        worker_threads=int(os.environ.get("FAULT_THREADS", "4")),
        relay_batch_size=int(os.environ.get("FAULT_RELAY_BATCH", "100")),
        relay_idle_poll_seconds=0.1,
        visibility_timeout_seconds=int(os.environ.get("FAULT_VT", "4")),
        actor_time_limit_seconds=int(os.environ.get("FAULT_VT", "4")) - 1,
        min_backoff_ms=20,
        max_backoff_ms=100,
        worker_idle_timeout_ms=100,
    )
    proc = WorkerProcess(settings, os.environ["DATABASE_URL"], subscribers=subscribers())
    stop = threading.Event()
    stop_on_signals(stop.set)  # not in the handler itself: haengbok.signals
    proc.start()
    print("ready", flush=True)
    stop.wait()
    proc.stop(timeout_seconds=5)


if __name__ == "__main__":
    main()
