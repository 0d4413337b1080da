"""Kill real worker processes (which also run the relay) at any instant, restart PostgreSQL
under them, feed them a poison message: nothing is lost and no effect happens twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from haengbok.embedded import EmbeddedPostgres
from outbox.envelope import MessageContext, NewMessage
from outbox.log import append
from tests.fault.worker_app import PING, PONG, SCHEMA
from tests.waiting import wait_until

pytestmark = pytest.mark.fault


class Workers:
    """Worker subprocesses that can be killed and replaced."""

    def __init__(self, url: str, **env: str) -> None:
        self.url = url
        self.env = {**os.environ, "DATABASE_URL": url, **env}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.kills = 0

    def start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fault.worker_app"], env=self.env, stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready", "worker did not start"
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _close(proc)
        self.procs.remove(proc)
        self.kills += 1

    def stop_all(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _close(proc)
        self.procs.clear()


def _close(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture
def fault_db(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        conn.execute(SCHEMA)
    return database_url


@pytest.fixture(params=[1, 16], ids=["one-per-transaction", "batches-of-16"])
def workers(fault_db: str, request: pytest.FixtureRequest) -> Iterator[Workers]:
    """Every fault case runs with the handler alone per message and in batches."""
    pool = Workers(fault_db, FAULT_BATCH=str(request.param))
    yield pool
    pool.stop_all()


def ping_all(url: str, count: int, streams: int, **flags: Any) -> list[str]:
    ids = []
    with psycopg.connect(url) as conn:
        for i in range(count):
            ping_id = uuid.uuid4().hex
            ids.append(ping_id)
            payload = {"ping_id": ping_id, **flags}
            append(conn, [NewMessage(PING, f"s-{i % streams}", payload)], MessageContext.new())
            if i % 500 == 499:
                conn.commit()
    return ids


def tally(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"""
            SELECT
              (SELECT count(*) FROM outbox.event WHERE type = '{PING}'),
              (SELECT count(DISTINCT ping_id) FROM public.fault_effects),
              (SELECT count(*) FROM public.fault_effects),
              (SELECT count(*) FROM outbox.event WHERE type = '{PONG}'),
              (SELECT count(DISTINCT payload->>'ping_id') FROM outbox.event WHERE type = '{PONG}')
            """
        ).fetchone()
    assert row is not None
    pings, handled, effects, pongs, distinct_pongs = (int(v) for v in row)
    return {
        "lost": pings - handled,
        "duplicate_effects": effects - handled,
        "duplicate_events": pongs - distinct_pongs,
        "handled": handled,
    }


def diagnose(url: str) -> dict[str, Any]:
    """What is where, for a failure message."""
    with psycopg.connect(url) as conn:
        return {
            "tally": tally(url),
            "unrelayed": conn.execute(
                "SELECT count(*) FROM outbox.event WHERE global_position IS NULL"
            ).fetchone(),
            "queue": conn.execute(
                "SELECT count(*), max(read_ct), min(vt) - now() FROM pgmq.q_fault_counter"
            ).fetchone(),
            "parked": conn.execute(
                "SELECT count(*), min(error) FROM ops.parked_message"
            ).fetchone(),
            "backends": conn.execute(
                "SELECT application_name, state, count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() GROUP BY 1, 2"
            ).fetchall(),
        }


def order_kept(url: str) -> bool:
    """Within each stream, effects happened in version order."""
    with psycopg.connect(url) as conn:
        bad = conn.execute(
            "SELECT count(*) FROM (SELECT version < lag(version) OVER (PARTITION BY stream"
            " ORDER BY at) AS backwards FROM public.fault_effects) x WHERE backwards"
        ).fetchone()
    return bad == (0,)


class TestKillingWorkers:
    def test_sigkill_mid_handler_redelivers_once_with_no_duplicate_effect(
        self, fault_db: str, workers: Workers
    ) -> None:
        victim = workers.start()
        (blocked_id,) = ping_all(fault_db, 1, 1, block_once=True)
        others = ping_all(fault_db, 50, 5)

        def blocked_pid() -> int | None:
            with psycopg.connect(fault_db) as conn:
                row = conn.execute(
                    "SELECT pid FROM public.fault_blocked WHERE ping_id = %s", [blocked_id]
                ).fetchone()
            return row[0] if row else None

        assert wait_until(blocked_pid, message="handler is blocked mid-transaction") == victim.pid
        workers.kill(victim)
        workers.start()
        wait_until(lambda: tally(fault_db)["handled"] == 1 + len(others), timeout=30)
        counts = tally(fault_db)
        assert counts == {"lost": 0, "duplicate_effects": 0, "duplicate_events": 0, "handled": 51}

    def test_random_kills_of_workers_and_their_relays_over_thousands_of_messages(
        self, fault_db: str, workers: Workers
    ) -> None:
        workers.start()
        workers.start()
        # Pings come in waves; a random worker (with its relay) is killed as soon as a wave
        # starts being handled and a new one started: each kill lands while messages flow,
        # however fast they are handled (in batches on a fast disk a wave takes ~0.2 s).
        waves, per_wave = 12, 500
        total = waves * per_wave
        rng = random.Random(7)
        for _ in range(waves):
            before = tally(fault_db)["handled"]
            ping_all(fault_db, per_wave, 40)
            wait_until(lambda b=before: tally(fault_db)["handled"] > b, timeout=30, interval=0.005)
            workers.kill(rng.choice(workers.procs))
            workers.start()
        wait_until(lambda: tally(fault_db)["handled"] == total, timeout=60)
        counts = tally(fault_db)
        print(f"kills={workers.kills} counts={counts}")
        assert workers.kills == waves
        assert counts == {
            "lost": 0,
            "duplicate_effects": 0,
            "duplicate_events": 0,
            "handled": total,
        }
        assert order_kept(fault_db), "per-stream order survived the kills"
        with psycopg.connect(fault_db) as conn:
            positions = conn.execute(
                "SELECT count(*), count(DISTINCT global_position), max(global_position)"
                " FROM outbox.event WHERE global_position IS NOT NULL"
            ).fetchone()
        assert positions is not None and positions[0] == positions[1] == positions[2]


class TestDatabaseRestart:
    def test_workers_reconnect_after_postgres_crashes_and_finish(
        self, fault_db: str, workers: Workers, embedded_server: EmbeddedPostgres | None
    ) -> None:
        if embedded_server is None:
            pytest.skip("restarting PostgreSQL needs the embedded server (DATABASE_URL is set)")
        workers.start()
        workers.start()
        ping_all(fault_db, 1500, 30)
        wait_until(lambda: tally(fault_db)["handled"] > 100, timeout=30)
        embedded_server.kill_and_start()  # immediate shutdown: like a crash
        wait_until(
            lambda: tally(fault_db)["handled"] == 1500, timeout=90,
            message=lambda: f"all handled after the restart; state: {diagnose(fault_db)}",
        )  # fmt: skip
        assert all(p.poll() is None for p in workers.procs), "workers survived the restart"
        assert tally(fault_db) == {"lost": 0, "duplicate_effects": 0, "duplicate_events": 0,
                                   "handled": 1500}  # fmt: skip


class TestPoisonMessage:
    def test_poison_is_parked_after_its_retries_and_other_keys_keep_flowing(
        self, fault_db: str, workers: Workers
    ) -> None:
        workers.start()
        (poison,) = ping_all(fault_db, 1, 1, poison=True)  # stream s-0
        healthy = ping_all(fault_db, 200, 10)  # s-0 .. s-9

        def parked() -> list[tuple[Any, ...]]:
            with psycopg.connect(fault_db) as conn:
                return conn.execute(
                    "SELECT group_key, read_ct, error, message->'args'->0->'payload'->>'ping_id'"
                    " FROM ops.parked_message ORDER BY id"
                ).fetchall()

        # Everything outside stream s-0 is handled; s-0's later pings wait behind the poison.
        in_other_streams = 200 - 20
        wait_until(
            lambda: tally(fault_db)["handled"] == in_other_streams,
            timeout=30,
            message=lambda: f"{in_other_streams} handled; got {diagnose(fault_db)}",
        )
        rows = wait_until(lambda: parked() or None, timeout=30)
        assert rows[0][0] == "s-0"
        assert rows[0][1] == 3, "first attempt + max_retries=2"
        assert "poison ping" in rows[0][2]
        assert rows[0][3] == poison
        handled_streams = _handled_streams(fault_db)
        assert "s-0" not in handled_streams and len(handled_streams) == 9
        assert len(healthy) == 200


def _handled_streams(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT DISTINCT stream FROM public.fault_effects")}
