"""The broker's statements on a queue's table (sql/queries/queue.sql) against pgmq's functions
doing the same (pgmq.send, pgmq.read, pgmq.delete), side by side on one connection: a cycle
sends one message, reads it and deletes it in one transaction, the shape of a delivery.

    .venv/bin/python -m tests.bench.bench_queue_statements [--cycles 3000] [--rounds 3]

Reported per round as cycles per second and as the CPU the server process of the connection
spent per cycle (read from /proc: the database runs on this machine), with their ratios (this
machine is shared and noisy: rounds alternate, and the ratio within a round is what to read).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from sql import queue_query
from tests.bench.common import drop_database, fresh_database, write_result

QUEUE = "bench_statements"
BODY = Jsonb({"actor_name": "a", "args": [{"k": "v" * 200}], "kwargs": {}, "options": {}})
HEADERS = Jsonb({"x-pgmq-group": "g"})
TICKS = os.sysconf("SC_CLK_TCK")


def pgmq_cycle(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute(
            "SELECT pgmq.send(%s::text, %s::jsonb, %s::jsonb, clock_timestamp())",
            [QUEUE, BODY, HEADERS],
        )
        row = conn.execute("SELECT msg_id FROM pgmq.read(%s::text, 30, 1)", [QUEUE]).fetchone()
        assert row is not None
        conn.execute("SELECT pgmq.delete(%s::text, %s::bigint)", [QUEUE, row[0]])


def direct_cycle(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute(
            queue_query("send", QUEUE), {"message": BODY, "headers": HEADERS, "delay_ms": 0}
        )
        row = conn.execute(
            queue_query("read", QUEUE), {"queue": QUEUE, "vt": 30, "qty": 1}
        ).fetchone()
        assert row is not None
        conn.execute(queue_query("delete", QUEUE), {"msg_id": row[0]})


def backend_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def run(conn: psycopg.Connection[Any], cycle: Callable[[psycopg.Connection[Any]], None],
        cycles: int) -> tuple[float, float]:  # fmt: skip
    """Cycles per second, and server CPU microseconds per cycle."""
    pid = conn.info.backend_pid
    cpu, start = backend_cpu_seconds(pid), time.perf_counter()
    for _ in range(cycles):
        cycle(conn)
    elapsed = time.perf_counter() - start
    return cycles / elapsed, (backend_cpu_seconds(pid) - cpu) * 1e6 / cycles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url, _server = fresh_database("bench_queue_statements")
    rounds = []
    try:
        with psycopg.connect(url) as conn:
            conn.execute("SELECT pgmq.create(%s::text)", [QUEUE])
            conn.commit()
            for cycle in (pgmq_cycle, direct_cycle):  # warm up: prepared statements, caches
                run(conn, cycle, 200)
            for i in range(args.rounds):
                functions, functions_us = run(conn, pgmq_cycle, args.cycles)
                direct, direct_us = run(conn, direct_cycle, args.cycles)
                rounds.append({"pgmq_functions": {"per_s": functions, "server_us": functions_us},
                               "direct": {"per_s": direct, "server_us": direct_us}})  # fmt: skip
                print(f"round {i + 1}: pgmq functions {functions:,.0f} cycles/s, server "
                      f"{functions_us:.0f} us/cycle; direct statements {direct:,.0f} cycles/s, "
                      f"server {direct_us:.0f} us/cycle; rate {direct / functions:.2f}x, "
                      f"server CPU {direct_us / functions_us:.2f}x", flush=True)  # fmt: skip
        write_result("queue_statements", {"cycles": args.cycles, "rounds": rounds})
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
