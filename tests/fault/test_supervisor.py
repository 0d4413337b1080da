"""Self-healing on one machine: the supervisor restarts a child that was killed, or one that\nis stuck (its heartbeat went stale)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from haengbok.supervisor import ChildSpec, Supervisor
from tests.waiting import wait_until

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.mark.fault
class TestSupervisor:
    def test_a_killed_child_is_restarted_and_stop_ends_all_children(self) -> None:
        sup = Supervisor(
            [ChildSpec("a", SLEEPER), ChildSpec("b", SLEEPER)], min_backoff=0.05, grace_seconds=5
        )
        thread = threading.Thread(target=sup.run, kwargs={"poll_seconds": 0.02})
        thread.start()
        try:
            wait_until(lambda: all(sup.pids().values()), message="both children started")
            first, other = sup.pids()["a"], sup.pids()["b"]
            assert first is not None
            os.kill(first, signal.SIGKILL)
            wait_until(lambda: sup.pids()["a"] not in (None, first), message="child a restarted")
            assert sup.restarts()["a"] == 1
            assert sup.pids()["b"] == other, "the healthy child is left alone"
        finally:
            sup.stop()
            thread.join(timeout=10)
        assert not thread.is_alive()
        for pid in sup.pids().values():
            assert pid is not None
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)  # reaped: no such process any more


def _beating_child(heartbeat: Path) -> list[str]:
    """A child that touches its heartbeat file (named in HAENGBOK_HEARTBEAT_FILE) all along."""
    code = (
        "import os, pathlib, time\n"
        "p = pathlib.Path(os.environ['HAENGBOK_HEARTBEAT_FILE'])\n"
        "while True:\n"
        "    p.touch(); time.sleep(0.05)\n"
    )
    return [sys.executable, "-c", code]


@pytest.mark.fault
class TestStuckChild:
    def test_a_child_whose_heartbeat_went_stale_is_killed_and_started_again(
        self, tmp_path: Path
    ) -> None:
        heartbeat = tmp_path / "child.alive"
        sup = Supervisor(
            [ChildSpec("w", _beating_child(heartbeat), heartbeat_file=heartbeat)],
            min_backoff=0.05, grace_seconds=5, stale_seconds=0.5,
        )  # fmt: skip
        thread = threading.Thread(target=sup.run, kwargs={"poll_seconds": 0.02})
        thread.start()
        try:
            wait_until(lambda: sup.pids()["w"] is not None and heartbeat.exists())
            wait_until(lambda: _age(heartbeat) < 0.2, message="it beats")
            time.sleep(0.8)  # longer than stale_seconds: a beating child is left alone
            first = sup.pids()["w"]
            assert sup.stuck_kills == {} and sup.restarts()["w"] == 0
            assert first is not None

            os.kill(first, signal.SIGSTOP)  # stuck: alive, but no progress

            wait_until(lambda: sup.pids()["w"] not in (None, first), message="restarted")
            assert sup.stuck_kills == {"w": 1}
            with pytest.raises(ProcessLookupError):
                os.kill(first, 0)  # the stuck one was killed and reaped
        finally:
            sup.stop()
            thread.join(timeout=10)


def _age(path: Path) -> float:
    return time.time() - path.stat().st_mtime
