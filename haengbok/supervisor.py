"""A small process supervisor for `haengbok up`: starts the children, restarts one that dies
(with backoff) or that stopped making progress (a stale heartbeat, ``haengbok.heartbeat``),
and on Ctrl-C or SIGTERM stops them all, politely first.

On Kubernetes the kubelet does this job (liveness probes, restarts); locally this does.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from haengbok.heartbeat import DEFAULT_STALE_SECONDS, heartbeat_age

log = logging.getLogger(__name__)


@dataclass
class ChildSpec:
    """A child to keep running. With ``heartbeat_file`` it is also restarted when it stops
    making progress: the file is named to it in ``HAENGBOK_HEARTBEAT_FILE``, and one older than
    the supervisor's ``stale_seconds`` (or missing that long after the start) gets the child
    killed and started again (``haengbok.heartbeat``)."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    heartbeat_file: Path | None = None


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start: float = 0.0


class Supervisor:
    """Keeps every child running until ``stop()``."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        grace_seconds: float = 20.0,
        min_backoff: float = 0.5,
        max_backoff: float = 15.0,
        healthy_after: float = 30.0,
        stale_seconds: float = DEFAULT_STALE_SECONDS,
    ) -> None:
        self._children = [_Child(s) for s in specs]
        self._grace = grace_seconds
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._healthy_after = healthy_after
        self._stale_seconds = stale_seconds
        self._stopping = threading.Event()
        #: Children killed because their heartbeat went stale, by name.
        self.stuck_kills: dict[str, int] = {}

    def pids(self) -> dict[str, int | None]:
        return {c.spec.name: c.process.pid if c.process else None for c in self._children}

    def restarts(self) -> dict[str, int]:
        return {c.spec.name: c.restarts for c in self._children}

    def _start(self, child: _Child) -> None:
        env = {**os.environ, **child.spec.env}
        if child.spec.heartbeat_file is not None:
            child.spec.heartbeat_file.unlink(missing_ok=True)  # the last run's says nothing
            env["HAENGBOK_HEARTBEAT_FILE"] = str(child.spec.heartbeat_file)
        child.process = subprocess.Popen(list(child.spec.argv), env=env)
        child.started_at = time.monotonic()
        log.info("started %s (pid %s)", child.spec.name, child.process.pid)

    def run(self, poll_seconds: float = 0.2) -> None:
        """Supervise until ``stop()`` is called (from a signal handler or another thread)."""
        for child in self._children:
            self._start(child)
        while not self._stopping.wait(poll_seconds):
            now = time.monotonic()
            for child in self._children:
                self._tend(child, now)
        self._shutdown()

    def _tend(self, child: _Child, now: float) -> None:
        proc = child.process
        if proc is not None and proc.poll() is None:
            if self._stuck(child, now):
                proc.kill()  # SIGKILL: a stuck process may not act on SIGTERM
                proc.wait()
            else:
                return
        if proc is not None:
            uptime = now - child.started_at
            if uptime >= self._healthy_after:
                child.restarts = 0  # it had been healthy; start the backoff over
            backoff = min(self._max_backoff, self._min_backoff * (2 ** min(child.restarts, 10)))
            log.warning(
                "%s exited with %s after %.1fs; restarting in %.1fs",
                child.spec.name, proc.returncode, uptime, backoff,
            )  # fmt: skip
            child.process = None
            child.restarts += 1
            child.next_start = now + backoff
        if now >= child.next_start:
            self._start(child)

    def _stuck(self, child: _Child, now: float) -> bool:
        path = child.spec.heartbeat_file
        if path is None or now - child.started_at < self._stale_seconds:
            return False
        age = heartbeat_age(path)
        if age is not None and age <= self._stale_seconds:
            return False
        said = "no heartbeat" if age is None else f"a heartbeat {age:.0f}s old"
        log.error(
            "%s is stuck (%s, limit %.0fs): killing it to start it again",
            child.spec.name, said, self._stale_seconds,
        )  # fmt: skip
        self.stuck_kills[child.spec.name] = self.stuck_kills.get(child.spec.name, 0) + 1
        return True

    def stop(self) -> None:
        self._stopping.set()

    def _shutdown(self) -> None:
        running = [c.process for c in self._children if c.process and c.process.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._grace
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pid %s did not stop within %.0fs; killing it", proc.pid, self._grace)
                proc.kill()
                proc.wait()
