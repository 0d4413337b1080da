"""A load client that costs the machine little: threads with one keep-alive ``http.client``
connection each, POSTing request bodies either at a fixed rate or as fast as they answer.

The Dining benchmarks run the client on the same two cores as the system it measures, so the
client's own CPU is taken from the system. An asyncio + httpx client at 100 requests/s took
half a core and fell behind (its connection pool grows with the requests in flight), so the
latencies it reported were mostly its own queueing. Here a request costs one ``http.client``
round trip on an idle thread.

A paced request's start is the moment it was due, not the moment a thread got to it: a late
send still counts from its schedule (no coordinated omission), and ``late_ms`` shows how far
the client itself fell behind.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

RETRY_PAUSE_SECONDS = 0.25
MAX_ATTEMPTS = 400  # bounds one request's retries of 503s (about 100 s)


@dataclass
class Sent:
    started: dict[str, float] = field(default_factory=dict)  # reservation id -> wall clock
    answered_ms: list[float] = field(default_factory=list)  # 202s: due -> answer read
    late_ms: list[float] = field(default_factory=list)  # due -> request written
    codes: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    shed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, exc: Exception) -> None:
        kind = repr(exc)[:200]
        with self.lock:
            self.errors += 1
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


class _Connection:
    def __init__(self, api_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(api_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._headers = headers
        self._conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):  # a keep-alive connection the server closed: reconnect once
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=60)
            try:
                self._conn.request("POST", path, body=body, headers=self._headers)
                reply = self._conn.getresponse()
                return reply.status, reply.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def _record(sent: Sent, status: int, data: bytes, due: float) -> None:
    with sent.lock:
        sent.codes[status] = sent.codes.get(status, 0) + 1
        if status == 202:
            sent.started[json.loads(data)["reservation_id"]] = due
            sent.answered_ms.append((time.time() - due) * 1000)


def paced(
    api_url: str, token: str, path: str, bodies: Sequence[bytes], rate: float, threads: int = 64
) -> tuple[Sent, float]:
    """POST ``bodies`` at ``rate`` per second; returns what was sent and the achieved rate of
    the schedule (how fast requests were handed to the threads)."""
    sent = Sent()
    jobs: queue.SimpleQueue[tuple[float, bytes] | None] = queue.SimpleQueue()

    def work() -> None:
        conn = _Connection(api_url, _headers(token))
        try:
            while (job := jobs.get()) is not None:
                due, body = job
                late = (time.time() - due) * 1000
                try:
                    status, data = conn.post(path, body)
                except (OSError, http.client.HTTPException) as exc:
                    sent.error(exc)
                    continue
                with sent.lock:
                    sent.late_ms.append(late)
                _record(sent, status, data, due)
        finally:
            conn.close()

    pool = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    start_mono, start_wall = time.monotonic(), time.time()
    for i, body in enumerate(bodies):
        pause = start_mono + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        jobs.put((start_wall + i / rate, body))
    achieved = len(bodies) / max(time.monotonic() - start_mono, 1e-9)
    for _ in pool:
        jobs.put(None)
    for t in pool:
        t.join()
    return sent, achieved


def flat_out(api_url: str, token: str, path: str, bodies: Sequence[bytes], clients: int) -> Sent:
    """POST ``bodies`` as fast as ``clients`` connections answer; a 503 (load shedding) is
    retried after a short pause and counted."""
    sent = Sent()
    pending = iter(bodies)
    take = threading.Lock()

    def work() -> None:
        conn = _Connection(api_url, _headers(token))
        try:
            while True:
                with take:
                    body = next(pending, None)
                if body is None:
                    return
                for _ in range(MAX_ATTEMPTS):
                    due = time.time()
                    try:
                        status, data = conn.post(path, body)
                    except (OSError, http.client.HTTPException) as exc:
                        sent.error(exc)
                        break
                    _record(sent, status, data, due)
                    if status != 503:
                        break
                    with sent.lock:
                        sent.shed += 1
                    time.sleep(RETRY_PAUSE_SECONDS)
        finally:
            conn.close()

    pool = [threading.Thread(target=work, daemon=True) for _ in range(clients)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sent
