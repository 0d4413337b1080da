"""uvicorn with a drain step: on SIGTERM readiness fails at once, the server keeps serving for
``drain_seconds`` (so the load balancer stops sending traffic), then shuts down gracefully."""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from time import monotonic
from types import FrameType

import structlog
import uvicorn
from litestar import Litestar

from api.health import begin_draining

log = structlog.get_logger("api.server")


class DrainingServer(uvicorn.Server):
    """A uvicorn server that drains before it stops and then exits with status 0."""

    def __init__(self, config: uvicorn.Config, app: Litestar, *, drain_seconds: float) -> None:
        super().__init__(config)
        self._app = app
        self._drain_seconds = drain_seconds
        self._draining = False
        self._drain_until: tuple[float, int, FrameType | None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            # What was built to serve (modules, the app, its pool) lives as long as the
            # process: out of the collector's sight, a full collection walks only what comes
            # after (the API's had taken 24-29 ms, the GIL held; the worker does the same).
            gc.freeze()
            log.info("api_serving", objects_frozen=gc.get_freeze_count())

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: fail readiness, stop after the drain window. A second one: stop now.
        So does the first while the server is still starting: it never answered ready, so no
        load balancer sends it anything to drain (under load a process can take seconds to
        start, and draining after that made its stop late)."""
        if self._draining or self._drain_seconds <= 0 or not self.started:
            begin_draining(self._app)
            super().handle_exit(sig, frame)
            return
        self._draining = True
        begin_draining(self._app)
        # Stopped by the main loop's next tick after this, not by a timer started here: this
        # runs in a signal handler, where starting a thread takes locks the interrupted main
        # thread may hold (haengbok.signals).
        self._drain_until = (monotonic() + self._drain_seconds, sig, frame)

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's tick (every 0.1 s); ends the drain window once it has passed."""
        if self._drain_until is not None and monotonic() >= self._drain_until[0]:
            _, sig, frame = self._drain_until
            self._drain_until = None
            super().handle_exit(sig, frame)
        return await super().on_tick(counter)

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's signal capture, minus its re-raise of the signal after shutdown.

        uvicorn raises the captured SIGTERM again once it has stopped, so the process dies of
        it (status -15) even after a complete, graceful drain; the supervisor and Kubernetes
        would read that as a crash. The shutdown was asked for and went well: exit 0.
        """
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()
