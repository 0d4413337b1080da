"""The seed's load test on Dining: ``siege -c100 -t60S`` posting reservations to the running
system (payment sandbox, API, workers), and the same siege against a bare Litestar + psycopg
handler that does the same inserts (``tests/bench/bare_app.py``), in the same run.

For each API process count: a fresh database and system; siege the system; wait until every
accepted reservation is terminal (and every queue is drained); siege the bare handler (served
the same way, same uvicorn process count, on its own fresh database that nothing consumes).
With ``--rounds 2`` the second round runs the bare handler first.

    .venv/bin/python -m tests.bench.bench_dining_siege [--seconds 60] [--concurrency 100]
        [--processes 1,2,3] [--workers 1] [--rounds 1] [--api-only]

``--api-only`` stops the workers during the siege (they start afterwards and work through the
backlog): the API's own cost, without the workers competing for the two cores. The workers
run at their configured CPU priority (``HAENGBOK_WORKER_NICE``, 19 by default: the API answers
first, the burst waits in the queues); ``HAENGBOK_WORKER_NICE=0`` has them compete with the API
as equals.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from haengbok.bootstrap import record_routes
from haengbok.settings import Settings
from tests.bench.common import drop_database, fresh_database, write_result
from tests.bench.dining_system import (
    HOST,
    RESERVATIONS_PATH,
    SLOTS,
    Processes,
    Restaurant,
    System,
    free_port,
    outcome,
    register_restaurants,
    reservation_bodies,
    tokens,
    wait_http,
    wait_settled,
)
from tests.bench.siege import CONNECTION_MODES, SiegeResult, run_siege, write_rc

URL_LINES = 5000


def write_urls(path: Path, base: str, bodies: list[dict[str, Any]]) -> Path:
    lines = [
        f"{base}{RESERVATIONS_PATH} POST {json.dumps(b, separators=(',', ':'))}" for b in bodies
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def reservations(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM reservation.reservation").fetchone()
        return int(row[0]) if row else 0


def siege_dict(r: SiegeResult) -> dict[str, Any]:
    return {
        "transactions": r.transactions, "failed": r.failed, "availability_pct": r.availability,
        "transaction_rate": r.transaction_rate, "response_time_s": r.response_time,
        "longest_s": r.longest,
    }  # fmt: skip


def siege_system(
    args: argparse.Namespace, procs: Processes, processes: int, rc: Path
) -> dict[str, Any]:
    url, _server = fresh_database("bench_dining")
    try:
        record_routes(Settings.from_env(), url)
        system = System(url, procs)
        system.start_sandbox()
        system.start_api(processes)
        customer, owner = tokens()
        restaurants = register_restaurants(system.api_url, owner, args.restaurants)
        if not args.api_only:
            system.start_workers(args.workers, args.threads)
        bodies = reservation_bodies(restaurants, URL_LINES)
        urls = write_urls(procs.log_dir / "system-urls.txt", system.api_url, bodies)
        headers = {"Authorization": f"Bearer {customer}", "Content-Type": "application/json"}
        before = reservations(url)
        print(f"  system, {processes} API process(es): siege ...", flush=True)
        result = run_siege(
            urls, concurrency=args.concurrency, seconds=args.seconds, headers=headers, rc_file=rc
        )
        stopped = time.monotonic()
        procs.check_alive()
        with psycopg.connect(url, autocommit=True) as conn:
            at_end = outcome(conn)
        print(
            f"    {result.transaction_rate:.1f} trans/s, availability {result.availability:.2f}%, "
            f"response {result.response_time:.3f}s, ok {result.transactions}, failed "
            f"{result.failed}; at the end {at_end.not_terminal} not terminal, "
            f"{at_end.queued} messages queued, {at_end.unrelayed} events unrelayed",
            flush=True,
        )
        if args.settle_deadline <= 0:  # the siege figures only
            time.sleep(3)  # requests in flight when siege stopped still commit
            with psycopg.connect(url, autocommit=True) as conn:
                state = outcome(conn)
            return {"siege": siege_dict(result), "rows_created": state.total - before}
        if args.api_only:
            system.start_workers(args.workers, args.threads)
        terminal_s, drained_s, state = wait_settled(
            url, deadline_seconds=args.settle_deadline, started=stopped
        )
        print(
            f"    all terminal after {terminal_s}s, queues drained after {drained_s}s: "
            f"{state.as_dict()}",
            flush=True,
        )
        system.stop_api()
        system.stop_workers()
        procs.stop("payments")
        confirmed = state.by_status.get("CONFIRMED", 0)
        # Counted once everything settled: requests in flight when siege's clock ran out are
        # not in its count, but the API still committed them (their clients got no answer).
        created = state.total - before
        return {
            "siege": siege_dict(result),
            "accepted_by_siege": result.transactions,
            "rows_created": created,
            "lost": max(0, result.transactions - created),
            "rows_committed_after_siege_stopped_waiting": max(0, created - result.transactions),
            "at_siege_end": at_end.as_dict(),
            "seconds_until_all_terminal_after_siege": terminal_s,
            "seconds_until_queues_drained_after_siege": drained_s,
            "stuck_after_deadline": state.not_terminal,
            "confirmed": confirmed,
            "outcome": state.as_dict(),
        }
    finally:
        procs.stop_all()
        drop_database(url)


# "two-statements" is the old name of "transaction" (the bare handler made two inserts before
# session 13, when the request began to start its saga: now it makes the request's four).
BARE_FACTORIES = {
    "transaction": "create_app",
    "two-statements": "create_app",
    "one-statement": "create_app_one_statement",
}


def siege_bare(
    args: argparse.Namespace, procs: Processes, processes: int, rc: Path
) -> dict[str, Any]:
    url, _server = fresh_database("bench_dining_bare")
    try:
        port = free_port()
        base = f"http://{HOST}:{port}"
        argv = [
            sys.executable, "-m", "uvicorn", f"tests.bench.bare_app:{BARE_FACTORIES[args.bare]}",
            "--factory",
            "--host", HOST, "--port", str(port), "--workers", str(processes),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        procs.start("bare", argv, {"DATABASE_URL": url})
        wait_http(f"{base}/health", procs)
        # The same request shapes; the bare handler never looks a restaurant up (and
        # reservation.restaurant_id has no foreign key), so made-up ids do.
        restaurants = [Restaurant(str(uuid.uuid4()), tuple(SLOTS)) for _ in range(args.restaurants)]
        urls = write_urls(
            procs.log_dir / "bare-urls.txt", base, reservation_bodies(restaurants, URL_LINES)
        )
        headers = {"Content-Type": "application/json"}
        before = reservations(url)
        print(f"  bare ({args.bare}), {processes} process(es): siege ...", flush=True)
        result = run_siege(
            urls, concurrency=args.concurrency, seconds=args.seconds, headers=headers, rc_file=rc
        )
        procs.check_alive()
        time.sleep(3)  # requests in flight when siege stopped still commit
        created = reservations(url) - before
        print(
            f"    {result.transaction_rate:.1f} trans/s, availability {result.availability:.2f}%, "
            f"response {result.response_time:.3f}s, ok {result.transactions}, failed "
            f"{result.failed}, rows created {created}",
            flush=True,
        )
        procs.stop("bare")
        return {"siege": siege_dict(result), "rows_created": created}
    finally:
        procs.stop_all()
        drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--processes", default="1,2,3", help="API process counts to try")
    parser.add_argument("--workers", type=int, default=1, help="haengbok worker processes")
    parser.add_argument("--threads", type=int, default=None, help="threads per worker")
    parser.add_argument("--restaurants", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--bare",
        choices=sorted(BARE_FACTORIES),
        default="transaction",
        help="the bare handler's inserts (the real request's: reservation, event, saga "
        "instance, first command): each a statement in a transaction (the issue's baseline; "
        "two-statements is its old name) or as one statement in autocommit, as the real "
        "command writes",
    )
    parser.add_argument(
        "--settle-deadline",
        type=float,
        default=900.0,
        help="seconds to wait for every reservation to be terminal; 0: do not wait",
    )
    parser.add_argument("--api-only", action="store_true")
    parser.add_argument(
        "--connection",
        choices=CONNECTION_MODES,
        default="close",
        help="siege's connection mode: close (siege's default, the seed's test: a new TCP "
        "connection per request) or keep-alive (one per simulated user)",
    )
    parser.add_argument("--name", default="dining_siege", help="bench-results/<name>.json")
    args = parser.parse_args()
    counts = [int(p) for p in args.processes.split(",")]
    procs = Processes()
    rc = write_rc(procs.log_dir / "siegerc", connection=args.connection)
    runs: list[dict[str, Any]] = []
    try:
        for n in counts:
            for rnd in range(args.rounds):
                order = ["system", "bare"] if rnd % 2 == 0 else ["bare", "system"]
                run: dict[str, Any] = {"api_processes": n, "round": rnd + 1, "order": order}
                for which in order:
                    if which == "system":
                        run["system"] = siege_system(args, procs, n, rc)
                    else:
                        run["bare"] = siege_bare(args, procs, n, rc)
                s_rate = run["system"]["siege"]["transaction_rate"]
                b_rate = run["bare"]["siege"]["transaction_rate"]
                run["ratio_system_to_bare"] = s_rate / b_rate if b_rate else None
                print(
                    f"  => {n} process(es): system {s_rate:.1f}/s vs bare {b_rate:.1f}/s "
                    f"= {run['ratio_system_to_bare']:.2f}x (goal >= 0.6x, >= 1000/s)",
                    flush=True,
                )
                runs.append(run)
    finally:
        procs.stop_all()
    result = {
        "seconds": args.seconds, "concurrency": args.concurrency, "workers": args.workers,
        "threads": args.threads, "api_only": args.api_only, "runs": runs,
        "worker_nice": Settings.from_env().worker_nice, "bare": args.bare,
        "logs": str(procs.log_dir),
    }  # fmt: skip
    print(f"written {write_result(args.name, result)}")


if __name__ == "__main__":
    main()
