"""``haengbok api --processes N``: N API server processes on one listening socket, each of
which drains on shutdown as the single-process server does.

uvicorn's own multi-process supervisor starts plain uvicorn servers, so a SIGTERM stopped the
children at once: readiness never turned 503 first and requests in the drain window were
refused. Here the parent binds the socket, starts each child with ``spawn`` (a fresh
interpreter: no pools or threads inherited), and each child serves a ``DrainingServer`` of its
own app. On SIGTERM or SIGINT the parent passes SIGTERM on to every child and waits while they
drain and stop; it exits 0 when all of them did. A child that dies while the parent is not
stopping is started again after a pause (``RESTART_DELAY_SECONDS``), so one crashing request
handler does not take the other processes' traffic with it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

import uvicorn

from haengbok.settings import Settings
from haengbok.signals import on_signals

log = logging.getLogger(__name__)

RESTART_DELAY_SECONDS = 1.0
# After the drain and the graceful shutdown, how long the parent still waits before it kills.
STOP_SLACK_SECONDS = 5.0


@dataclass(frozen=True)
class ChildOptions:
    """What a child needs to serve: sent to it through ``spawn``, so only plain values."""

    host: str
    port: int
    drain_seconds: float
    graceful_seconds: int


def serve_child(options: ChildOptions, sock: socket.socket) -> None:
    """A child's whole life: build the app from the environment, serve on the inherited
    socket, drain on SIGTERM."""
    # Stopped while still starting (imports, the app), it has served nothing to drain: exit
    # cleanly. The server's own handlers replace this one once it serves.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from api.server import DrainingServer
    from haengbok.bootstrap import build_api
    from haengbok.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings)
    app = build_api(settings)
    config = uvicorn.Config(
        app, host=options.host, port=options.port, log_level="warning", access_log=False,
        timeout_graceful_shutdown=options.graceful_seconds,
    )  # fmt: skip
    DrainingServer(config, app, drain_seconds=options.drain_seconds).run(sockets=[sock])


class ApiProcesses:
    """The parent: binds, starts ``count`` children, keeps them running, stops them in turn."""

    def __init__(self, options: ChildOptions, count: int) -> None:
        if count < 1:
            raise ValueError("at least one API process")
        self._options = options
        self._count = count
        self._stopping = threading.Event()
        self._children: list[BaseProcess] = []
        self._context = multiprocessing.get_context("spawn")

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; 0 when every child stopped by itself."""
        sock = socket.socket(socket.AF_INET6 if ":" in self._options.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._options.host, self._options.port))
        except OSError as exc:
            sock.close()
            raise SystemExit(
                f"cannot listen on {self._options.host}:{self._options.port}: {exc.strerror}; "
                "stop what uses the port or pass another --port"
            ) from exc
        sock.listen(2048)
        sock.set_inheritable(True)
        on_signals(self._on_signal)
        try:
            self._children = [self._start(sock) for _ in range(self._count)]
            log.info("API processes started: %s", ", ".join(str(c.pid) for c in self._children))
            while not self._stopping.wait(0.5):
                self._replace_dead(sock)
            return self._stop_all()
        finally:
            sock.close()

    def _start(self, sock: socket.socket) -> BaseProcess:
        child = self._context.Process(
            target=serve_child, args=(self._options, sock), name="haengbok-api", daemon=False
        )
        child.start()
        return child

    def _replace_dead(self, sock: socket.socket) -> None:
        for i, child in enumerate(self._children):
            if child.is_alive() or self._stopping.is_set():
                continue
            log.warning(
                "API process %s died (exit code %s); starting another in %.0fs",
                child.pid, child.exitcode, RESTART_DELAY_SECONDS,
            )  # fmt: skip
            if self._stopping.wait(RESTART_DELAY_SECONDS):
                return
            self._children[i] = self._start(sock)

    def _on_signal(self, sig: int) -> None:
        # On the signals thread (haengbok.signals), beside the main thread that waits, starts
        # and joins the children: so only their pids here, never their process objects (two
        # threads reaping one child would leave the main thread unsure it ended). A second
        # signal while stopping is passed on too: the children then stop at once.
        if self._stopping.is_set():
            for pid in [child.pid for child in self._children if child.pid is not None]:
                with contextlib.suppress(ProcessLookupError):  # gone meanwhile
                    os.kill(pid, signal.SIGTERM)
        self._stopping.set()

    def _signal_children(self) -> None:
        for child in self._children:
            if child.is_alive() and child.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # gone meanwhile
                    os.kill(child.pid, signal.SIGTERM)

    def _stop_all(self) -> int:
        self._signal_children()
        deadline = (
            time.monotonic()
            + self._options.drain_seconds
            + self._options.graceful_seconds
            + STOP_SLACK_SECONDS
        )
        clean = True
        for child in self._children:
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                log.warning("API process %s did not stop in time; killing it", child.pid)
                child.kill()
                child.join()
                clean = False
            elif child.exitcode not in (0, -signal.SIGTERM):
                # Killed by the SIGTERM it was sent: a child still starting (before
                # serve_child set its handler) had served nothing, so that is a clean stop.
                clean = False
        return 0 if clean else 1
