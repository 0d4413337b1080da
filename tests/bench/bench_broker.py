"""Broker throughput: PgmqBroker against Dramatiq's RedisBroker, side by side in one run.

A no-op actor, the same Dramatiq worker settings (threads, prefetch) for both. Each round
enqueues every message first (timed separately), then starts a worker and times until the queue
is drained: every message ran and its ack reached the broker (pgmq: row deleted; Redis: no
message or unacked id left). Rounds alternate between the brokers.

    .venv/bin/python -m tests.bench.bench_broker [--messages 20000] [--threads 8]
        [--prefetch 0] [--rounds 2]

The database: DATABASE_URL's server, else the embedded one in .pgdata-bench (durable
settings: fsync and synchronous_commit stay on). Redis: 127.0.0.1:6379, default settings.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from outbox.broker import PgmqBroker
from tests.bench.common import drop_database, fresh_database, write_result

QUEUE = "bench_noop"


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def hit(self) -> None:
        with self.lock:
            self.n += 1


def _declare(broker: dramatiq.Broker, counter: Counter) -> dramatiq.Actor[Any, Any]:
    def noop(i: int) -> None:
        counter.hit()

    return dramatiq.actor(actor_name="noop", queue_name=QUEUE, broker=broker)(noop)


def _drain(
    broker: dramatiq.Broker, threads: int, prefetch: int, counter: Counter, messages: int
) -> dict[str, float]:
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    if prefetch:
        worker.queue_prefetch = prefetch
    start = time.perf_counter()
    worker.start()
    try:
        while counter.n < messages:
            time.sleep(0.002)
        ran = time.perf_counter() - start
        broker.join(QUEUE, timeout=120_000)
        drained = time.perf_counter() - start
    finally:
        worker.stop(timeout=30_000)
    return {"seconds_all_ran": ran, "seconds_drained": drained, "msgs_per_s": messages / drained}


def run_redis(messages: int, threads: int, prefetch: int) -> dict[str, float]:
    counter = Counter()
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    broker = RedisBroker(url="redis://127.0.0.1:6379/0", namespace=namespace)  # type: ignore[no-untyped-call]
    actor = _declare(broker, counter)
    try:
        start = time.perf_counter()
        for i in range(messages):  # RedisBroker has no batch enqueue
            actor.send(i)
        enqueue = time.perf_counter() - start
        result = _drain(broker, threads, prefetch, counter, messages)
    finally:
        broker.flush_all()
        broker.close()
    return {"enqueue_seconds": enqueue, **result}


def run_pgmq(
    url: str, messages: int, threads: int, prefetch: int, groups: int = 0
) -> dict[str, float]:
    """``groups`` > 0: an ordered queue, messages spread round-robin over that many groups."""
    counter = Counter()
    broker = PgmqBroker(url, pool_max_size=4, ordered_queues=[QUEUE] if groups else [])
    actor = _declare(broker, counter)
    try:
        start = time.perf_counter()
        broker.enqueue_batch(
            actor.message_with_options(args=(i,), group=f"g{i % groups}") if groups else
            actor.message(i)
            for i in range(messages)
        )  # fmt: skip
        enqueue = time.perf_counter() - start
        result = _drain(broker, threads, prefetch, counter, messages)
    finally:
        broker.flush_all()
        broker.close()
    return {"enqueue_seconds": enqueue, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--prefetch", type=int, default=0, help="0: Dramatiq's 2 x threads")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--ordered-groups", type=int, default=0,
        help="also time PgmqBroker on an ordered queue with this many FIFO groups",
    )  # fmt: skip
    args = parser.parse_args()
    prefetch = args.prefetch or 2 * args.threads

    url, server = fresh_database("bench_broker")
    contenders: dict[str, Callable[[], dict[str, float]]] = {
        "redis": lambda: run_redis(args.messages, args.threads, prefetch),
        "pgmq": lambda: run_pgmq(url, args.messages, args.threads, prefetch),
    }
    if args.ordered_groups:
        contenders["pgmq_ordered"] = lambda: run_pgmq(
            url, args.messages, args.threads, prefetch, args.ordered_groups
        )
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    try:
        for round_ in range(args.rounds):
            for name, run in contenders.items():
                result = run()
                runs[name].append(result)
                print(
                    f"round {round_ + 1} {name:12}: {result['msgs_per_s']:8.0f} msgs/s "
                    f"(all ran {result['seconds_all_ran']:.2f}s, drained "
                    f"{result['seconds_drained']:.2f}s; enqueue {result['enqueue_seconds']:.2f}s)"
                )
    finally:
        drop_database(url)
        if server is not None:
            server.stop()

    median = {k: statistics.median(r["msgs_per_s"] for r in v) for k, v in runs.items()}
    ratio = median["pgmq"] / median["redis"]
    print(
        f"median: pgmq {median['pgmq']:.0f} msgs/s, redis {median['redis']:.0f} msgs/s, "
        f"pgmq/redis = {ratio:.2f}x"
    )
    path = write_result("broker", {
        "what": "no-op actor; time from worker start until the queue is drained (all acked); "
                "enqueue timed separately (pgmq: enqueue_batch/pgmq.send_batch, "
                "redis: one send per message)",
        "messages": args.messages, "worker_threads": args.threads, "prefetch": prefetch,
        "ordered_groups": args.ordered_groups,
        "rounds": runs, "median_msgs_per_s": median, "ratio_pgmq_over_redis": ratio,
    })  # fmt: skip
    print(f"written to {path}")


if __name__ == "__main__":
    main()
