"""Zero-downtime shutdown of the real API process: on SIGTERM readiness fails at once, the
server keeps answering for the drain window (so the load balancer can move traffic away), then
it exits cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.waiting import wait_until

DRAIN_SECONDS = 2.0
# Start-up and shutdown overheads on a shared, busy machine.
START_TIMEOUT = 30.0
EXIT_SLACK = 5.0
HAENGBOK = Path(sys.executable).parent / "haengbok"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status(client: httpx.Client, path: str) -> int | None:
    try:
        return client.get(path).status_code
    except httpx.TransportError:
        return None


@pytest.fixture
def api_process(database_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "HAENGBOK_DRAIN_SECONDS": str(DRAIN_SECONDS)}
    with (tmp_path / "api.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(HAENGBOK), "api", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.mark.fault
class TestSigtermDrains:
    def test_readiness_fails_liveness_holds_then_the_process_exits_zero(
        self, api_process: tuple[subprocess.Popen[bytes], str]
    ) -> None:
        proc, base = api_process
        with httpx.Client(base_url=base, timeout=2.0) as client:
            wait_until(
                lambda: proc.poll() is not None or _status(client, "/health/ready") == 200,
                timeout=START_TIMEOUT,
                message="the API answers ready",
            )
            assert proc.poll() is None, "the API process died while starting"

            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()

            wait_until(
                lambda: _status(client, "/health/ready") == 503,
                timeout=DRAIN_SECONDS,
                message="readiness fails once draining",
            )
            assert _status(client, "/health/live") == 200
            assert time.monotonic() - signalled < DRAIN_SECONDS, "checked inside the drain window"

        returncode = proc.wait(timeout=DRAIN_SECONDS + EXIT_SLACK)
        exited_after = time.monotonic() - signalled
        assert returncode == 0
        assert exited_after >= DRAIN_SECONDS, "it kept serving for the whole drain window"
