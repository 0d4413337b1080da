"""A small process supervisor for `haengbok up`: starts the children, restarts one that dies
(with backoff), and on Ctrl-C or SIGTERM stops them all, politely first.

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

log = logging.getLogger(__name__)


@dataclass
class ChildSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)


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
    ) -> None:
        self._children = [_Child(s) for s in specs]
        self._grace = grace_seconds
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._healthy_after = healthy_after
        self._stopping = threading.Event()

    def pids(self) -> dict[str, int | None]:
        return {c.spec.name: c.process.pid if c.process else None for c in self._children}

    def restarts(self) -> dict[str, int]:
        return {c.spec.name: c.restarts for c in self._children}

    def _start(self, child: _Child) -> None:
        env = {**os.environ, **child.spec.env}
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
