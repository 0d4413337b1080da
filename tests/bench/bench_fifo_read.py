"""Ordered-queue reads: pgmq.read_grouped_head (groups the whole queue per read) against the
broker's read_group_heads (sql/queries/queue.sql: one index probe per candidate), side by side
on the same queue.

    .venv/bin/python -m tests.bench.bench_fifo_read [--messages 20000] [--groups 10000]
"""

from __future__ import annotations

import argparse
import time

import psycopg

from sql import queue_query
from tests.bench.common import drop_database, fresh_database, write_result

READERS = {
    "pgmq.read_grouped_head": "SELECT * FROM pgmq.read_grouped_head('fifo_bench', 30, 16)",
    "read_group_heads": queue_query("read_group_heads", "fifo_bench"),
}
PARAMS = {"queue": "fifo_bench", "vt": 30, "qty": 16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=50)
    args = parser.parse_args()
    url, _server = fresh_database("bench_fifo")
    timings: dict[str, list[float]] = {name: [] for name in READERS}
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pgmq.create('fifo_bench')")
            conn.execute("SELECT outbox.pgmq_ensure_group_index('fifo_bench')")
            conn.execute(
                "INSERT INTO pgmq.q_fifo_bench (vt, message, headers)"
                " SELECT clock_timestamp(), jsonb_build_object('i', i),"
                " jsonb_build_object('x-pgmq-group', 'g' || (i %% %(groups)s))"
                " FROM generate_series(1, %(n)s) AS i",
                {"n": args.messages, "groups": args.groups},
            )
            conn.execute("VACUUM ANALYZE pgmq.q_fifo_bench")
            for name in list(READERS) * 2:  # alternate, twice
                start = time.perf_counter()
                for _ in range(args.reads):
                    with conn.transaction(force_rollback=True):
                        conn.execute(READERS[name], PARAMS).fetchall()
                timings[name].append((time.perf_counter() - start) / args.reads * 1000)
        old, new = (min(timings[n]) for n in READERS)
        print(f"{args.messages} messages in {args.groups} groups, read of 16: "
              f"read_grouped_head {old:.2f} ms, read_group_heads {new:.2f} ms "
              f"({old / new:.1f}x faster)")  # fmt: skip
        write_result("fifo_read", {"messages": args.messages, "groups": args.groups,
                                   "ms_per_read": timings, "speedup": old / new})  # fmt: skip
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
