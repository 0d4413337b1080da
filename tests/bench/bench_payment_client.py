"""The payment client's cost per charge: ``HttpPaymentProvider`` (urllib3) against the same
request made with httpx (what the client used before), side by side against the sandbox
provider running in its own process. Reported per round: charges per second and this
process's CPU per charge (the worker's cost), and their ratios.

    .venv/bin/python -m tests.bench.bench_payment_client [--charges 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable

import httpx

from haengbok.payments.breaker import CircuitBreaker, MemoryBreakerStore
from haengbok.payments.client import IDEMPOTENCY_HEADER, HttpPaymentProvider
from tests.bench.common import write_result
from tests.bench.dining_system import Processes, System


def run(charge: Callable[[str], None], charges: int) -> tuple[float, float]:
    """Charges per second, and CPU microseconds of this process per charge."""
    cpu, start = time.process_time(), time.perf_counter()
    for _ in range(charges):
        charge(uuid.uuid4().hex)
    elapsed = time.perf_counter() - start
    return charges / elapsed, (time.process_time() - cpu) * 1e6 / charges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--charges", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    procs = Processes()
    rounds = []
    try:
        system = System("", procs)
        system.start_sandbox()
        breaker = CircuitBreaker("payments", MemoryBreakerStore(), failure_threshold=1000)
        client = HttpPaymentProvider(system.payment_url, breaker)
        reference = httpx.Client(base_url=system.payment_url, timeout=httpx.Timeout(5.0))

        def with_client(key: str) -> None:
            assert client.charge(key, 10_000, "bench").approved

        def with_httpx(key: str) -> None:
            reply = reference.post(
                "/charges",
                json={"amount": 10_000, "reference": "bench"},
                headers={IDEMPOTENCY_HEADER: key},
            )
            assert reply.status_code in (200, 201) and reply.json()["status"] == "approved"

        run(with_client, 100)  # warm up: connections, imports
        run(with_httpx, 100)
        for i in range(args.rounds):
            new_rate, new_cpu = run(with_client, args.charges)
            old_rate, old_cpu = run(with_httpx, args.charges)
            rounds.append({"client": {"per_s": new_rate, "cpu_us": new_cpu},
                           "httpx": {"per_s": old_rate, "cpu_us": old_cpu}})  # fmt: skip
            print(f"round {i + 1}: client {new_rate:,.0f}/s, {new_cpu:.0f} us CPU per charge; "
                  f"httpx {old_rate:,.0f}/s, {old_cpu:.0f} us; CPU per charge "
                  f"{new_cpu / old_cpu:.2f}x, rate {new_rate / old_rate:.2f}x",
                  flush=True)  # fmt: skip
        client.close()
        reference.close()
        write_result("payment_client", {"charges": args.charges, "rounds": rounds})
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
