"""Real HTTP servers for tests: uvicorn on a free port in a thread of the test process.

``running_sandbox`` serves the sandbox provider, so tests can look into its ledger (requests
received, charges) and change its behaviour over HTTP like an operator would."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from haengbok.payments.sandbox import create_sandbox_app
from haengbok.payments.sandbox_ledger import SandboxLedger
from tests.waiting import wait_until


@dataclass
class RunningSandbox:
    url: str
    ledger: SandboxLedger

    def behave(self, **behaviour: Any) -> None:
        """PUT /admin/behaviour (omitted knobs go back to well-behaved)."""
        response = httpx.put(f"{self.url}/admin/behaviour", json=behaviour, timeout=5)
        assert response.status_code == 200, response.text

    def requests(self) -> int:
        """Payment requests that reached the sandbox so far."""
        return self.ledger.stats().requests


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve an ASGI app over real HTTP on a free port until the block ends; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        # Leave the process's logging alone: uvicorn's own config would rewire its loggers for
        # every test that runs after this one.
        log_config=None,
        log_level="warning",
        access_log=False,
        ws="none",
        lifespan="on",
        # A request still sleeping in the sandbox must not hold up the end of the test.
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
    )
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=10, message="the server starts")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def running_sandbox(seed: int = 0) -> Iterator[RunningSandbox]:
    """The sandbox provider over real HTTP, with its ledger in reach of the test."""
    ledger = SandboxLedger(seed)
    with serving(create_sandbox_app(ledger)) as url:
        yield RunningSandbox(url, ledger)
