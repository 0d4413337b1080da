"""A worker's liveness: a file whose modification time says the process is making progress.

A worker process that is stuck (stopped by a signal, starved, a thread that holds the GIL and
never lets go, its consumer or handler threads gone) answers nothing and exits nothing, so
waiting for it to die catches nothing. Instead the worker touches a file every few seconds,
from a thread of its own and only while the threads it depends on are alive
(``Heartbeat(checks=...)``), and whoever keeps it alive reads the file's age:

- ``haengbok up``'s supervisor kills and restarts a worker whose file is older than
  ``HAENGBOK_HEARTBEAT_STALE_SECONDS`` (it names the file in ``HAENGBOK_HEARTBEAT_FILE``);
- on Kubernetes, the liveness probe runs ``haengbok worker-alive``, which exits 1 then.

The file is local to the process's machine or pod (its directory, e.g. a tmpfs), never shared.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 5.0
DEFAULT_STALE_SECONDS = 30.0


def heartbeat_age(path: Path, now: float | None = None) -> float | None:
    """Seconds since the file was last touched (wall clock), or None when there is none."""
    try:
        touched = path.stat().st_mtime
    except FileNotFoundError:
        return None
    return (time.time() if now is None else now) - touched


def touch(path: Path) -> None:
    """Set the file's modification time to now, creating it (and its directory) if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8"):
        pass
    os.utime(path)


class Heartbeat:
    """Touches ``path`` every ``interval_seconds`` while every one of ``checks`` holds."""

    def __init__(
        self,
        path: Path,
        *,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        checks: Sequence[Callable[[], bool]] = (),
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError("the heartbeat interval must be positive")
        self.path = path
        self.interval_seconds = interval_seconds
        self._checks = list(checks)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> bool:
        """One beat: touch the file if every check holds; whether it did."""
        failed = [check for check in self._checks if not check()]
        if failed:
            log.error(
                "heartbeat withheld: %d of the worker's checks failed (%s); it will be restarted",
                len(failed), ", ".join(getattr(c, "__name__", repr(c)) for c in failed),
            )  # fmt: skip
            return False
        touch(self.path)
        return True

    def start(self) -> None:
        self.beat()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                self.beat()
            except OSError as exc:  # a full or read-only disk: say so, keep trying
                log.error("heartbeat file %s cannot be touched: %s", self.path, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_seconds + 1)
