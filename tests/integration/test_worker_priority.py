"""A worker process runs below the API's CPU priority: every one of its threads has the nice
value of ``--nice`` or ``HAENGBOK_WORKER_NICE`` (Linux keeps a nice value per thread, so a
thread started before the change would keep the old one). A value out of range is a usage
error that names the setting."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from haengbok.bootstrap import record_routes
from haengbok.settings import Settings
from haengbok.worker import lower_cpu_priority
from tests.waiting import wait_until


def _nice_of_threads(pid: int) -> dict[int, int]:
    """Each thread's nice value, from field 19 of /proc/<pid>/task/<tid>/stat."""
    values = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 on
        values[int(task.name)] = int(fields[19 - 3])
    return values


class _Worker:
    def __init__(self, database_url: str, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "haengbok.cli", "worker", "--threads", "2", *args],
            env={**os.environ, "DATABASE_URL": database_url, **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def wait_running(self) -> str:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if "worker running" in line:
                return line
        raise AssertionError(f"the worker exited with {self.proc.wait()} before running")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


StartWorker = Callable[..., _Worker]


@pytest.fixture
def start_worker(database_url: str) -> Iterator[StartWorker]:
    record_routes(Settings(), database_url)
    started: list[_Worker] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> _Worker:
        worker = _Worker(database_url, args, env or {})
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


class TestWorkerProcess:
    @pytest.mark.parametrize(
        ("args", "env", "expected"),
        [
            (["--nice", "7"], {"HAENGBOK_WORKER_NICE": "3"}, 7),
            ([], {"HAENGBOK_WORKER_NICE": "12"}, 12),
            ([], {}, Settings().worker_nice),
        ],
        ids=["option-over-setting", "setting", "default"],
    )
    def test_every_thread_runs_at_the_nice_value(
        self, start_worker: StartWorker, args: list[str], env: dict[str, str], expected: int
    ) -> None:
        worker = start_worker(args, env)

        line = worker.wait_running()
        # The relay, projection, scheduler and consumer threads are all up by now; the nice
        # value is read again once the count stops growing, to see the late ones too.
        wait_until(
            lambda: len(_nice_of_threads(worker.proc.pid)) >= 6,
            timeout=20,
            message="worker threads started",
        )

        values = _nice_of_threads(worker.proc.pid)
        assert set(values.values()) == {expected}, values
        assert f"nice {expected}" in line
        # What it built to start is frozen out of the collector's sight (shorter full GCs).
        frozen = re.search(r"(\d+) objects frozen", line)
        assert frozen is not None and int(frozen.group(1)) > 1000, line

    @pytest.mark.parametrize(
        ("args", "env"), [([], {"HAENGBOK_WORKER_NICE": "25"}), (["--nice", "25"], {})]
    )
    def test_a_nice_value_out_of_range_is_a_usage_error_naming_the_setting(
        self, start_worker: StartWorker, args: list[str], env: dict[str, str]
    ) -> None:
        worker = start_worker(args, env)

        assert worker.proc.wait(timeout=30) == 2
        assert worker.proc.stderr is not None
        err = worker.proc.stderr.read()
        assert "0 to 19, not 25" in err and "HAENGBOK_WORKER_NICE" in err
        assert "Traceback" not in err


def _in_a_thread(action: object) -> object:
    """Run ``action`` in a thread of its own: a nice value set there stays with that thread,
    so the test process keeps its own."""
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(action()))  # type: ignore[operator]
    thread.start()
    thread.join()
    return out[0]


class TestLowerCpuPriority:
    def test_threads_started_afterwards_inherit_the_value(self) -> None:
        def lower_then_start_one() -> tuple[int, int]:
            in_effect = lower_cpu_priority(9)
            seen: list[int] = []
            child = threading.Thread(target=lambda: seen.append(os.getpriority(os.PRIO_PROCESS, 0)))
            child.start()
            child.join()
            return in_effect, seen[0]

        assert _in_a_thread(lower_then_start_one) == (9, 9)

    def test_never_raises_the_priority_again(self) -> None:
        def twice() -> int:
            lower_cpu_priority(11)
            return lower_cpu_priority(4)

        assert _in_a_thread(twice) == 11

    @pytest.mark.parametrize("value", [-1, 20])
    def test_refuses_values_outside_0_to_19(self, value: int) -> None:
        with pytest.raises(ValueError, match="0 to 19"):
            lower_cpu_priority(value)


def _alive(heartbeat: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "haengbok.cli", "worker-alive", *args],
        env={**os.environ, "HAENGBOK_HEARTBEAT_FILE": str(heartbeat)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


class TestLiveness:
    """A stuck worker answers nothing and exits nothing; its heartbeat file says it."""

    def test_a_running_worker_beats_and_a_stopped_one_goes_stale(
        self, start_worker: StartWorker, tmp_path: Path
    ) -> None:
        heartbeat = tmp_path / "worker.alive"
        worker = start_worker(
            [],
            {
                "HAENGBOK_HEARTBEAT_FILE": str(heartbeat),
                "HAENGBOK_HEARTBEAT_INTERVAL_SECONDS": "0.1",
            },
        )
        worker.wait_running()
        first = _mtime_when_present(heartbeat)
        wait_until(lambda: heartbeat.stat().st_mtime > first, timeout=20, message="it beats")
        ok = _alive(heartbeat, "--max-age", "5")
        assert ok.returncode == 0, ok.stderr
        assert "alive" in ok.stdout

        os.kill(worker.proc.pid, signal.SIGSTOP)  # stuck: it neither works nor exits
        try:
            stopped_at = heartbeat.stat().st_mtime
            wait_until(
                lambda: _alive(heartbeat, "--max-age", "1").returncode == 1,
                timeout=30, message="the probe sees it stuck",
            )  # fmt: skip
            stuck = _alive(heartbeat, "--max-age", "1")
            assert "stuck" in stuck.stderr and "restart" in stuck.stderr
            assert heartbeat.stat().st_mtime == stopped_at, "no beat while stopped"
        finally:
            os.kill(worker.proc.pid, signal.SIGCONT)

    def test_no_heartbeat_file_means_not_running(self, tmp_path: Path) -> None:
        result = _alive(tmp_path / "never")
        assert result.returncode == 1
        assert "not running" in result.stderr


def _mtime_when_present(path: Path) -> float:
    wait_until(path.exists, timeout=20, message="the heartbeat file appears")
    return path.stat().st_mtime


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TestMetricsPort:
    """``HAENGBOK_WORKER_METRICS_PORT``: the worker serves its own metrics there (one scrape
    target per worker process, see haengbok.worker_metrics)."""

    def test_the_worker_serves_its_metrics_and_names_the_address(
        self, start_worker: StartWorker
    ) -> None:
        port = _free_port()
        worker = start_worker([], {"HAENGBOK_WORKER_METRICS_PORT": str(port)})
        line = worker.wait_running()
        assert f"metrics on http://127.0.0.1:{port}/metrics" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert "haengbok_worker_threads_alive 1.0" in text
        assert "process_cpu_seconds_total" in text

    def test_a_port_in_use_is_an_error_that_says_what_to_change(
        self, start_worker: StartWorker
    ) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            worker = start_worker([], {"HAENGBOK_WORKER_METRICS_PORT": str(port)})
            assert worker.proc.wait(timeout=60) == 1
            assert worker.proc.stderr is not None
            said = worker.proc.stderr.read()
        assert f"cannot serve worker metrics on 127.0.0.1:{port}" in said
        assert "HAENGBOK_WORKER_METRICS_PORT" in said
        assert "Traceback" not in said
