"""What a statement costs the process that sends it, and the relay's batch of one event.

At low rates every delivery step is a handful of small statements, and what each costs in the
sending process (psycopg, the interpreter, the socket) adds up with the server's share. This
measures the client CPU (``time.process_time``) and the wall time per run of a few shapes side
by side, in rounds that alternate them (the machine is shared and noisy; the minimum over the
rounds is the figure to compare): one select in autocommit, two selects in a transaction,
the same two pipelined, two values in one statement; and the relay's batch for one event
(``outbox.relay.Relay.relay_once`` after appending it, against the append alone).

    .venv/bin/python -m tests.bench.bench_statement_costs [--runs 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from statistics import median
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from outbox.envelope import MessageContext, NewMessage
from outbox.log import append
from outbox.relay import Relay, Route, sync_routes
from tests.bench.common import drop_database, fresh_database, write_result

ROUTES = [
    Route("bench_ordered", "bench_ordered", frozenset({"bench.Happened"}), True),
    Route("bench_plain", "bench_plain", frozenset({"bench.Happened"}), False),
]


def _shapes(
    autocommit: psycopg.Connection[Any], tx: psycopg.Connection[Any]
) -> dict[str, Callable[[], object]]:
    def one_select() -> object:
        return autocommit.execute("SELECT %s::int", (1,)).fetchone()

    def two_in_a_transaction() -> object:
        with tx.transaction():
            tx.execute("SELECT %s::int", (1,))
            return tx.execute("SELECT %s::int", (2,)).fetchone()

    def two_pipelined_in_a_transaction() -> object:
        with tx.pipeline(), tx.transaction():
            tx.execute("SELECT %s::int", (1,))
            cursor = tx.execute("SELECT %s::int", (2,))
        return cursor.fetchone()

    def two_values_in_one_statement() -> object:
        return autocommit.execute("SELECT %s::int, %s::int", (1, 2)).fetchone()

    return {
        "one select, autocommit": one_select,
        "two selects in a transaction": two_in_a_transaction,
        "the same two, pipelined": two_pipelined_in_a_transaction,
        "two values in one statement": two_values_in_one_statement,
    }


def _relay_shapes(
    url: str, writer: psycopg.Connection[Any], pool: ConnectionPool[Any]
) -> dict[str, Callable[[], object]]:
    relay = Relay(pool, url)
    counter = iter(range(10**9))

    def append_one() -> object:
        n = next(counter)
        event = NewMessage("bench.Happened", f"bench-{n}", {"n": n})
        return append(writer, [event], MessageContext.new("bench"))

    def append_and_relay() -> object:
        append_one()
        return relay.relay_once()

    relay.relay_once()  # reads its routes once, as a worker's relay does at its first batch
    return {"append one event": append_one, "append one event, then relay it": append_and_relay}


def _measure(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Microseconds per run: client CPU, wall."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(runs):
        fn()
    return (
        (time.process_time() - cpu) * 1e6 / runs,
        (time.perf_counter() - wall) * 1e6 / runs,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs of each shape per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    url, server = fresh_database("bench_statement_costs")
    try:
        with psycopg.connect(url) as conn:
            sync_routes(conn, ROUTES)
        with (
            psycopg.connect(url, autocommit=True) as autocommit,
            psycopg.connect(url) as tx,
            ConnectionPool(url, min_size=1, max_size=1) as pool,
        ):
            shapes = {**_shapes(autocommit, tx), **_relay_shapes(url, autocommit, pool)}
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in shapes}
            for fn in shapes.values():  # warm up: statements are prepared on their 5th run
                _measure(fn, 20)
            for round_no in range(1, args.rounds + 1):
                for name, fn in shapes.items():
                    samples[name].append(_measure(fn, args.runs))
                print(f"  round {round_no}/{args.rounds} done", flush=True)
        result: dict[str, Any] = {"runs": args.runs, "rounds": args.rounds, "shapes": {}}
        print(f"{'shape':40s} {'client CPU us (min / median)':>30s} {'wall us (min)':>14s}")
        for name, got in samples.items():
            cpu = [c for c, _ in got]
            wall = [w for _, w in got]
            result["shapes"][name] = {
                "cpu_us_min": round(min(cpu), 1),
                "cpu_us_median": round(median(cpu), 1),
                "wall_us_min": round(min(wall), 1),
            }
            print(f"{name:40s} {min(cpu):14.0f} / {median(cpu):6.0f} {min(wall):14.0f}")
        shapes_out = result["shapes"]
        pipelined = shapes_out["the same two, pipelined"]["cpu_us_min"]
        sequential = shapes_out["two selects in a transaction"]["cpu_us_min"]
        relay = (
            shapes_out["append one event, then relay it"]["cpu_us_min"]
            - shapes_out["append one event"]["cpu_us_min"]
        )
        result["pipelined_vs_sequential_cpu"] = round(pipelined / sequential, 2)
        result["relay_batch_of_one_cpu_us"] = round(relay, 1)
        print(f"pipelined / sequential client CPU: {pipelined / sequential:.2f}")
        print(f"the relay's batch of one event: {relay:.0f} us of client CPU (by difference)")
        print(f"written {write_result('statement_costs', result)}")
    finally:
        drop_database(url)
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
