"""`make bench`: every benchmark in turn; figures land in bench-results/*.json.

Each benchmark measures its comparison side by side in one run (this machine is shared and
noisy, so ratios mean more than absolute numbers).
"""

from __future__ import annotations

import subprocess
import sys

BENCHES = [
    ("broker: pgmq vs Redis, no-op actor, 20,000 messages", ["tests.bench.bench_broker"]),
    ("relay vs raw pgmq.send_batch, 100,000 events", ["tests.bench.bench_relay"]),
    ("latency commit -> handler start at 500 events/s", ["tests.bench.bench_latency"]),
    (
        "ordered-queue reads: read_grouped_head vs indexed group heads",
        ["tests.bench.bench_fifo_read"],
    ),
    (
        "a delivery's queue statements: pgmq's functions vs prepared statements on the table",
        ["tests.bench.bench_queue_statements"],
    ),
    (
        "what a statement costs the sending process; the relay's batch of one event",
        ["tests.bench.bench_statement_costs"],
    ),
    ("payment client: a charge with urllib3 vs with httpx", ["tests.bench.bench_payment_client"]),
    ("Dining projections: CPU per event of the runner's rounds", ["tests.bench.bench_projections"]),
    (
        "Dining: siege -c100 -t60S on the running system (2 API, 2 workers) vs a bare handler",
        ["tests.bench.bench_dining_siege", "--processes", "2", "--workers", "2"],
    ),
    (
        "Dining: the same siege with the workers stopped while it runs (the request path)",
        [
            "tests.bench.bench_dining_siege",
            "--processes",
            "2",
            "--api-only",
            "--settle-deadline",
            "0",
            "--name",
            "dining_siege_api_only",
        ],
    ),
    (
        "Dining end to end: request -> CONFIRMED at 100/s, and confirmations/s under a backlog",
        ["tests.bench.bench_dining_e2e", "--workers", "2"],
    ),
]


def main() -> int:
    failed = 0
    for title, module in BENCHES:
        print(f"\n=== {title}", flush=True)
        code = subprocess.call([sys.executable, "-m", *module])
        if code:
            print(f"!!! {module[0]} exited with {code}", flush=True)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
