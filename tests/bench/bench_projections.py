"""The Dining projections' cost per event: the projection runner's rounds over a log of
reservations that went the whole happy path, timed in this process (Python) and in its
PostgreSQL backend.

The log is written once (``--reservations`` reservations of 11 messages each, appended and
given their global positions as the write side and the relay do); each round then empties the
read models, puts every checkpoint back to 0 and catches the projections up in rounds of
``--batch`` events, as ``projections.runner`` does (``run_round``: one read of the log, every
projection's batch and the checkpoints in one transaction). CPU is read from the kernel: this
process's ``time.process_time()`` and the backend's utime + stime in ``/proc/<pid>/stat``
(so the server must run on this machine: the embedded one or a local ``DATABASE_URL``).
Reported per event, the minimum and the median over the rounds (the minimum is the figure
least disturbed by the rest of the machine). Compare versions side by side::

    .venv/bin/python -m tests.bench.bench_projections [--reservations 2000] [--rounds 5]
    .venv/bin/python -m tests.bench.side_by_side --baseline <rev> --pairs 2 --grep 'per event' \\
        -- tests.bench.bench_projections
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import psycopg
from psycopg import sql as pgsql

from outbox import wire
from projections.dining import projectors
from projections.runtime import run_round
from sql import query
from tests.bench.common import drop_database, fresh_database, write_result
from tests.integration.dining_read.support import Booking, record
from tests.integration.projections.support import relay_positions

_TICKS = os.sysconf("SC_CLK_TCK")
#: Reservations appended per transaction while the log is written.
_APPEND_CHUNK = 100


def backend_cpu_seconds(pid: int) -> float:
    """utime + stime of a local process (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def write_log(url: str, reservations: int) -> int:
    """Every reservation requested, paid, registered, accepted and confirmed; events logged."""
    done = 0
    while done < reservations:
        chunk = min(_APPEND_CHUNK, reservations - done)
        messages = []
        for i in range(chunk):
            booking = Booking(customer=f"customer-{(done + i) % 500}")
            messages.extend([booking.requested(), *booking.paid_and_confirmed()])
        record(url, *messages, relay=False)
        done += chunk
    relayed = 0
    while claimed := relay_positions(url, limit=10_000):
        relayed += claimed
    return relayed


def reset(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Empty every Dining read model and put its checkpoint back to 0."""
    tables = pgsql.SQL(", ").join(p.table.identifier for p in projectors())
    conn.execute(pgsql.SQL("TRUNCATE {}").format(tables))
    for p in projectors():
        conn.execute(query("projection.save_checkpoint"), {"name": p.name, "position": 0})
    conn.commit()
    conn.execute("VACUUM ANALYZE")


def one_round(conn: psycopg.Connection[tuple[object, ...]], batch: int) -> tuple[float, float]:
    """Catch every projection up from 0; this process's and the backend's CPU seconds."""
    pid = conn.info.backend_pid
    ours, theirs = time.process_time(), backend_cpu_seconds(pid)
    while any(run_round(conn, projectors(), batch_size=batch).values()):
        pass
    return time.process_time() - ours, backend_cpu_seconds(pid) - theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reservations", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=500, help="events per round (the runner's)")
    args = parser.parse_args()
    wire.use_fast_json()  # as the worker processes, where the runner runs, do
    url, _server = fresh_database("bench_projections")
    try:
        print(f"writing {args.reservations} reservations' messages to the log ...", flush=True)
        events = write_log(url, args.reservations)
        python: list[float] = []
        postgres: list[float] = []
        with psycopg.connect(url, autocommit=True) as conn:
            for p in projectors():
                conn.execute(query("projection.register"), {"name": p.name})
            conn.autocommit = False
            for r in range(args.rounds):
                with psycopg.connect(url, autocommit=True) as admin:
                    reset(admin)
                ours, theirs = one_round(conn, args.batch)
                python.append(ours / events * 1e6)
                postgres.append(theirs / events * 1e6)
                print(f"  round {r + 1}/{args.rounds}: python {python[-1]:.1f} us, "
                      f"postgres {postgres[-1]:.1f} us per event", flush=True)  # fmt: skip
        print(f"{events} events, {len(projectors())} projections, rounds of {args.batch}:")
        for name, figures in (("python", python), ("postgres", postgres)):
            print(f"  {name} CPU per event: min {min(figures):.1f} us, "
                  f"median {statistics.median(figures):.1f} us")  # fmt: skip
        total = [a + b for a, b in zip(python, postgres, strict=True)]
        print(
            f"  both per event: min {min(total):.1f} us, median {statistics.median(total):.1f} us"
        )
        path = write_result(
            "projections",
            {"events": events, "batch": args.batch, "python_us_per_event": python,
             "postgres_us_per_event": postgres},
        )  # fmt: skip
        print(f"written {path}")
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
