"""The API server's SIGTERM: a started server drains first, one still starting stops at once."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import uvicorn
from litestar import Litestar

from api.health import is_draining
from api.server import DrainingServer
from tests.waiting import wait_until


def _server(drain_seconds: float) -> tuple[DrainingServer, Litestar]:
    # log_config=None: uvicorn's own logging setup would stop its loggers propagating for the
    # rest of the test session.
    app = Litestar(route_handlers=[])
    return DrainingServer(
        uvicorn.Config(app, log_config=None), app, drain_seconds=drain_seconds
    ), app


def test_a_started_server_fails_readiness_and_stops_at_a_tick_after_the_drain() -> None:
    server, app = _server(drain_seconds=0.2)
    server.started = True
    threads = threading.active_count()
    signalled = time.monotonic()
    server.handle_exit(signal.SIGTERM, None)
    # A signal handler starts no thread (it could wait on a lock the main thread holds).
    assert threading.active_count() == threads
    assert is_draining(app)
    assert not asyncio.run(server.on_tick(1))  # still serving through the drain window
    wait_until(lambda: asyncio.run(server.on_tick(1)), timeout=5, message="stops after the drain")
    assert server.should_exit
    assert time.monotonic() - signalled >= 0.2


def test_a_second_signal_stops_it_at_once() -> None:
    server, _ = _server(drain_seconds=60)
    server.started = True
    server.handle_exit(signal.SIGTERM, None)
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit


def test_a_server_still_starting_stops_at_once() -> None:
    server, app = _server(drain_seconds=60)
    assert not server.started
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit
    assert is_draining(app)
