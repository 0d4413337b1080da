"""The Dining system as the benchmarks run it: payment sandbox, API and workers as child
processes on one fresh database, restaurants registered through the API, and the reads that
tell how far the reservations got.

Every process started here is stopped by ``Processes.stop_all`` (SIGTERM, then SIGKILL after a
grace period); callers put it in a ``finally``. Logs go to files in a temporary folder.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql as pgsql

from api.auth import mint_token
from haengbok.settings import Settings
from outbox.wire import GROUP_HEADER

HOST = "127.0.0.1"
CUSTOMER = "bench-customer"
OWNER = "bench-owner"
NOT_TERMINAL = ("PENDING", "DEPOSIT_PAID")
SLOTS = [f"{h:02d}:{m:02d}" for h in range(10, 22) for m in (0, 30)]  # 24 slots a day
RESERVATIONS_PATH = "/dining/reservations"
CLI = [sys.executable, "-m", "haengbok.cli"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def tokens() -> tuple[str, str]:
    """A customer's and a restaurant owner's bearer token (valid for 8 hours)."""
    settings = Settings.from_env()
    return (
        mint_token(settings, CUSTOMER, ["customer"], ttl_seconds=8 * 3600),
        mint_token(settings, OWNER, ["restaurant_owner"], ttl_seconds=8 * 3600),
    )


@dataclass
class Processes:
    """Child processes with their logs in one folder; ``stop_all`` ends every one of them."""

    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-dining-")))
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self.children[name] = subprocess.Popen(
            list(argv), env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()

    def log_text(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def check_alive(self) -> None:
        for name, proc in self.children.items():
            if proc.poll() is not None:
                tail = self.log_text(name)[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop(self, name: str, grace_seconds: float = 30.0) -> None:
        proc = self.children.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.children):
            self.stop(name)


def wait_http(url: str, procs: Processes, timeout_seconds: float = 60.0) -> None:
    """Until ``url`` answers 200 (or a child died, or the time is up)."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_seconds:.0f}s")


def wait_log(procs: Processes, name: str, text: str, timeout_seconds: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        procs.check_alive()
        if text in procs.log_text(name):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not log {text!r} within {timeout_seconds:.0f}s")


@dataclass
class System:
    """The running Dining system: where its API and payment provider listen."""

    database_url: str
    procs: Processes
    api_url: str = ""
    payment_url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 0

    def start_sandbox(self) -> None:
        port = free_port()
        self.payment_url = f"http://{HOST}:{port}"
        argv = [*CLI, "payments-sandbox", "--host", HOST, "--port", str(port)]
        self.procs.start("payments", argv, {})
        wait_http(f"{self.payment_url}/health", self.procs)
        self.env = {"DATABASE_URL": self.database_url, "HAENGBOK_PAYMENT_URL": self.payment_url}

    def start_workers(self, count: int, threads: int | None = None) -> None:
        extra = ["--threads", str(threads)] if threads else []
        for i in range(count):
            name = f"worker-{self.workers + i + 1}"
            self.procs.start(name, [*CLI, "worker", *extra], self.env)
        for i in range(count):
            wait_log(self.procs, f"worker-{self.workers + i + 1}", "worker running")
        self.workers += count

    def stop_workers(self) -> None:
        for i in range(self.workers):
            self.procs.stop(f"worker-{i + 1}")
        self.workers = 0

    def start_api(self, processes: int) -> None:
        port = free_port()
        self.api_url = f"http://{HOST}:{port}"
        argv = [*CLI, "api", "--host", HOST, "--port", str(port), "--processes", str(processes)]
        self.procs.start("api", argv, self.env)
        wait_http(f"{self.api_url}/health/ready", self.procs)

    def stop_api(self) -> None:
        self.procs.stop("api")


@dataclass(frozen=True)
class Restaurant:
    restaurant_id: str
    slots: tuple[str, ...]


def register_restaurants(
    api_url: str, owner_token: str, count: int, *, capacity: int = 1000
) -> list[Restaurant]:
    """``count`` restaurants with every slot of ``SLOTS`` and ``capacity`` seats per slot."""
    headers = {"Authorization": f"Bearer {owner_token}"}
    made: list[Restaurant] = []
    with httpx.Client(base_url=api_url, headers=headers, timeout=30.0) as client:
        for i in range(count):
            body = {
                "name": f"Bench restaurant {i}",
                "cuisine": "korean" if i % 2 else "italian",
                "slots": SLOTS,
                "capacity_per_slot": capacity,
                "deposit_amount": 10_000,
            }
            reply = client.post("/dining/restaurants", json=body)
            if reply.status_code != 202:
                raise RuntimeError(f"registering a restaurant: {reply.status_code} {reply.text}")
            made.append(Restaurant(reply.json()["restaurant_id"], tuple(SLOTS)))
    return made


def reservation_bodies(
    restaurants: Sequence[Restaurant], count: int, *, days: int = 60, seed: int = 7
) -> list[dict[str, Any]]:
    """``count`` varied requests: restaurant, a date 2 to ``days``+1 days ahead, slot, party."""
    rng = random.Random(seed)
    today = dt.date.today()
    bodies = []
    for _ in range(count):
        r = rng.choice(restaurants)
        bodies.append(
            {
                "restaurant_id": r.restaurant_id,
                "date": (today + dt.timedelta(days=rng.randint(2, days + 1))).isoformat(),
                "slot": rng.choice(r.slots),
                "party_size": rng.randint(1, 4),
            }
        )
    return bodies


# -- what happened to the reservations --------------------------------------------------------

POLL_SECONDS = 0.25
NOT_TERMINAL_SQL = "SELECT count(*) FROM reservation.reservation WHERE status = ANY(%s)"
STATUS_SQL = """
SELECT status, coalesce(split_part(status_reason, ':', 1), '') AS reason, count(*)
FROM reservation.reservation GROUP BY 1, 2 ORDER BY 1, 2
"""
ACTIVITY_SQL = """
SELECT (SELECT count(*) FROM outbox.event WHERE global_position IS NULL) AS unrelayed,
       (SELECT count(*) FROM ops.parked_message) AS parked,
       (SELECT count(*) FROM saga.instance WHERE status = 'PARKED') AS sagas_parked
"""
# Saga deadlines are delayed messages that stay queued for minutes (or until the slot), so
# "drained" means: no message left but deadlines (FIFO group ``deadline-...``).
_QUEUED_SQL = (
    "SELECT count(*) FILTER (WHERE coalesce(headers ->> %s, '') NOT LIKE 'deadline-%%'),"
    " count(*) FILTER (WHERE coalesce(headers ->> %s, '') LIKE 'deadline-%%') FROM pgmq.{}"
)


@dataclass(frozen=True)
class Outcome:
    by_status: dict[str, int]
    rejected_by_reason: dict[str, int]
    unrelayed: int
    queued: int
    parked: int
    sagas_parked: int
    deadlines: int = 0  # saga deadline messages still waiting (delayed)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def not_terminal(self) -> int:
        return sum(self.by_status.get(s, 0) for s in NOT_TERMINAL)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reservations": self.total,
            "by_status": self.by_status,
            "rejected_by_reason": self.rejected_by_reason,
            "not_terminal": self.not_terminal,
            "unrelayed_events": self.unrelayed,
            "queued_messages_but_deadlines": self.queued,
            "parked_messages": self.parked,
            "parked_sagas": self.sagas_parked,
            "pending_deadlines": self.deadlines,
        }


def outcome(conn: psycopg.Connection[Any]) -> Outcome:
    by_status: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for status, reason, n in conn.execute(STATUS_SQL).fetchall():
        by_status[status] += n
        if status == "REJECTED":
            reasons[reason or "(none)"] += n
    row = conn.execute(ACTIVITY_SQL).fetchone()
    assert row is not None
    queued = deadlines = 0
    for (name,) in conn.execute("SELECT queue_name FROM pgmq.meta").fetchall():
        table = pgsql.Identifier(f"q_{name}")
        sql = pgsql.SQL(_QUEUED_SQL).format(table)
        got = conn.execute(sql, [GROUP_HEADER, GROUP_HEADER]).fetchone()
        if got:
            queued, deadlines = queued + int(got[0]), deadlines + int(got[1])
    return Outcome(
        dict(by_status), dict(reasons), int(row[0]), queued, int(row[1]), int(row[2]), deadlines
    )


def wait_settled(
    database_url: str, *, deadline_seconds: float, started: float | None = None
) -> tuple[float | None, float | None, Outcome]:
    """Poll until no reservation is PENDING or DEPOSIT_PAID, then until every queue is empty
    (compensations done). Returns (seconds to all terminal, seconds to all queues empty, the
    outcome at the end); a None time means the deadline passed first."""
    t0 = time.monotonic() if started is None else started
    terminal_at: float | None = None
    with psycopg.connect(database_url, autocommit=True) as conn:
        # The poll shares the cores and the database with what it measures: until everything
        # is terminal it asks one cheap question; the full outcome (a scan of every queue)
        # only once that is answered.
        while terminal_at is None:
            now = time.monotonic()
            row = conn.execute(NOT_TERMINAL_SQL, [list(NOT_TERMINAL)]).fetchone()
            if row is not None and row[0] == 0:
                terminal_at = now - t0
            elif now - t0 > deadline_seconds:
                return None, None, outcome(conn)
            else:
                time.sleep(POLL_SECONDS)
        while True:
            now = time.monotonic()
            state = outcome(conn)
            if state.unrelayed == 0 and state.queued == 0:
                return terminal_at, now - t0, state
            if now - t0 > deadline_seconds:
                return terminal_at, None, state
            time.sleep(POLL_SECONDS)


def new_id() -> str:
    return uuid.uuid4().hex[:8]
