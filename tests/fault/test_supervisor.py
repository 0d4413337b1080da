"""Self-healing on one machine: the supervisor restarts a child that was killed."""

from __future__ import annotations

import os
import signal
import sys
import threading

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
