"""`haengbok payments-sandbox`: the process `haengbok up` supervises serves the provider on its
own port, changes behaviour at run time, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.waiting import wait_until

HAENGBOK = Path(sys.executable).parent / "haengbok"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    with (tmp_path / "sandbox.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(HAENGBOK), "payments-sandbox", "--port", str(port), "--seed", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


class TestSandboxProcess:
    def test_serves_charges_takes_new_behaviour_and_stops_on_sigterm(
        self, sandbox_process: tuple[subprocess.Popen[bytes], str]
    ) -> None:
        proc, url = sandbox_process
        wait_until(lambda: proc.poll() is not None or _healthy(url), timeout=30)
        assert proc.poll() is None, "the sandbox process died while starting"
        key = {"Idempotency-Key": "cli-test"}

        charged = httpx.post(f"{url}/charges", json={"amount": 500, "reference": "r"}, headers=key)
        assert charged.status_code == 201
        assert charged.json()["status"] == "approved"
        put = httpx.put(f"{url}/admin/behaviour", json={"failure_rate": 1.0})
        assert put.status_code == 200
        assert httpx.get(f"{url}/admin/behaviour").json()["failure_rate"] == 1.0
        other = {"Idempotency-Key": "cli-test-2"}
        failed = httpx.post(f"{url}/charges", json={"amount": 500, "reference": "r"}, headers=other)
        assert failed.status_code == 503
        assert failed.headers["Retry-After"] == "1"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
