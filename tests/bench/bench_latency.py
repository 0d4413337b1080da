"""Latency from command commit to handler start at a steady rate (default 500 events/s).

A producer commits one event per transaction at a fixed pace (and wakes the relay after the
commit, as the API does); a real worker process (relay + Dramatiq on pgmq) runs a handler that
records when it started. Latency = handler start - producer's commit time (same host clock).

    .venv/bin/python -m tests.bench.bench_latency [--rate 500] [--seconds 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid

import psycopg

from haengbok.settings import Settings
from haengbok.signals import stop_on_signals
from outbox.consumers import HandlerContext, Subscriber
from outbox.envelope import Envelope, MessageContext, NewMessage
from outbox.log import append
from sql import query
from tests.bench.common import drop_database, fresh_database, write_result

TABLE = "CREATE TABLE public.bench_started (event_id uuid PRIMARY KEY, started double precision)"


def handle(ctx: HandlerContext, env: Envelope) -> None:
    started = time.time()
    ctx.conn.execute("INSERT INTO public.bench_started VALUES (%s, %s)", [env.event_id, started])


def worker_main() -> None:
    from haengbok.worker import WorkerProcess

    settings = dataclasses.replace(Settings.from_env(), worker_threads=8, relay_batch_size=200)
    sub = Subscriber("bench_latency", frozenset({"bench.Pinged"}), handle)
    proc = WorkerProcess(settings, os.environ["DATABASE_URL"], subscribers=[sub])
    stop = threading.Event()
    stop_on_signals(stop.set)  # not in the handler itself: haengbok.signals
    proc.start()
    print("ready", flush=True)
    stop.wait()
    proc.stop(timeout_seconds=5)


def produce(url: str, rate: float, seconds: float) -> dict[uuid.UUID, float]:
    commits: dict[uuid.UUID, float] = {}
    interval = 1.0 / rate
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            due = start + i * interval
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)  # pacing the load, not waiting for an outcome
            msg = NewMessage("bench.Pinged", f"thing-{i % 500}", {"i": i})
            append(conn, [msg], MessageContext.new())
            conn.commit()
            commits[msg.event_id] = time.time()
            conn.execute(query("outbox.notify_relay"))
            conn.commit()
    return commits


def percentile(sorted_values: list[float], p: float) -> float:
    k = max(0, min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=2)
    args = parser.parse_args()
    url, _server = fresh_database("bench_latency")
    env = {**os.environ, "DATABASE_URL": url}
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.bench_latency", "--worker"], env=env,
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        with psycopg.connect(url) as conn:
            conn.execute(TABLE)
        assert worker.stdout is not None and worker.stdout.readline().strip() == b"ready"
        print(f"producing {args.rate:.0f} events/s for {args.seconds:.0f}s ...", flush=True)
        commits = produce(url, args.rate, args.seconds)
        deadline = time.monotonic() + 60
        with psycopg.connect(url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute("SELECT count(*) FROM public.bench_started").fetchone()
                if row and row[0] >= len(commits):
                    break
                time.sleep(0.2)
            started: dict[uuid.UUID, float] = dict(
                conn.execute("SELECT event_id, started FROM public.bench_started").fetchall()
            )
        skip = int(args.rate * args.warmup)
        ordered = list(commits.items())[skip:]
        lat = sorted((started[e] - t) * 1000 for e, t in ordered if e in started)
        missing = sum(1 for e, _ in ordered if e not in started)
        result = {
            "rate_per_s": args.rate, "seconds": args.seconds, "measured": len(lat),
            "missing": missing, "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
            "p99_ms": percentile(lat, 99), "max_ms": lat[-1], "mean_ms": statistics.fmean(lat),
        }  # fmt: skip
        print(
            f"commit -> handler start at {args.rate:.0f}/s: p50 {result['p50_ms']:.1f} ms, "
            f"p95 {result['p95_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max "
            f"{result['max_ms']:.1f} ms, missing {missing} (goal p50 <= 10, p99 <= 50)"
        )
        print(f"written {write_result('latency', result)}")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        if worker.stdout:
            worker.stdout.close()
        drop_database(url)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker_main()
    else:
        main()
