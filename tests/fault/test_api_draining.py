"""Zero-downtime shutdown of the real API process: on SIGTERM readiness fails at once, the
server keeps answering for the drain window (so the load balancer can move traffic away), then
it exits cleanly. The same with several server processes (``--processes``), whose parent also
starts a child again that died."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


def _wait_ready(proc: subprocess.Popen[bytes], client: httpx.Client) -> None:
    wait_until(
        lambda: proc.poll() is not None or _status(client, "/health/ready") == 200,
        timeout=START_TIMEOUT,
        message="the API answers ready",
    )
    assert proc.poll() is None, "the API process died while starting"


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def _servers(pid: int) -> set[int]:
    """The API server processes under the parent ``pid`` (spawn's resource tracker aside)."""
    found = set()
    for child in _children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if b"resource_tracker" not in cmdline:
            found.add(child)
    return found


def _api_argv(port: int, processes: int) -> list[str]:
    return [
        str(HAENGBOK), "api", "--host", "127.0.0.1", "--port", str(port),
        "--processes", str(processes),
    ]  # fmt: skip


@contextmanager
def _running_api(
    database_url: str, log_path: Path, *, processes: int, drain_seconds: float
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "HAENGBOK_DRAIN_SECONDS": str(drain_seconds)}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            _api_argv(port, processes), env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(params=[1, 2], ids=["one process", "two processes"])
def api_process(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with _running_api(
        database_url, tmp_path / "api.log", processes=request.param, drain_seconds=DRAIN_SECONDS
    ) as running:
        yield running


@pytest.mark.fault
class TestSigtermDrains:
    def test_readiness_fails_liveness_holds_then_the_process_exits_zero(
        self, api_process: tuple[subprocess.Popen[bytes], str]
    ) -> None:
        proc, base = api_process
        with httpx.Client(base_url=base, timeout=2.0) as client:
            _wait_ready(proc, client)

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


@pytest.mark.fault
def test_each_serving_process_freezes_what_it_built(
    api_process: tuple[subprocess.Popen[bytes], str], tmp_path: Path
) -> None:
    # gc.freeze() once serving: full collections then walk only what came after.
    proc, base = api_process
    with httpx.Client(base_url=base, timeout=2.0) as client:
        _wait_ready(proc, client)
    servers = len(_servers(proc.pid)) or 1  # --processes 1 serves in the parent
    frozen = wait_until(
        lambda: (
            found
            if len(found := re.findall(r"objects_frozen=(\d+)", (tmp_path / "api.log").read_text()))
            >= servers
            else None
        ),
        timeout=START_TIMEOUT,
        message="every serving process logs what it froze",
    )
    assert all(int(count) > 10_000 for count in frozen), frozen


@pytest.fixture
def two_api_processes(
    database_url: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with _running_api(database_url, tmp_path / "api.log", processes=2, drain_seconds=0) as running:
        yield running


@pytest.mark.fault
class TestSeveralProcesses:
    def test_a_killed_server_process_is_replaced_and_stopping_leaves_none_behind(
        self, two_api_processes: tuple[subprocess.Popen[bytes], str]
    ) -> None:
        proc, base = two_api_processes
        with httpx.Client(base_url=base, timeout=2.0) as client:
            _wait_ready(proc, client)
            wait_until(lambda: len(_servers(proc.pid)) == 2, timeout=START_TIMEOUT)
            first = _servers(proc.pid)
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            wait_until(
                lambda: len(_servers(proc.pid)) == 2 and victim not in _servers(proc.pid),
                timeout=START_TIMEOUT,
                message="the parent starts another server process",
            )
            replacement = (_servers(proc.pid) - first).pop()
            assert _status(client, "/health/live") == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=EXIT_SLACK + 10) == 0
        for pid in (*first - {victim}, replacement):
            assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"server {pid} still runs"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_taken_port_is_refused_with_what_to_do(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            _api_argv(port, 2),
            env={**os.environ, "DATABASE_URL": database_url},
            capture_output=True,
            timeout=START_TIMEOUT,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr.decode()
    assert "another --port" in done.stderr.decode()
