"""Stop signals handled on a thread of their own, never inside the signal handler.

Python runs a signal handler in the main thread, between any two bytecodes of whatever that
thread is doing. A handler that calls ``threading.Event.set()`` can land while the main thread
holds that event's own (non-reentrant) lock, half way into or out of ``Event.wait()``: the
handler then waits for a lock its own thread holds, for ever. That happened to a worker when
Ctrl-C's SIGINT (sent to the whole foreground process group) and the supervisor's SIGTERM
arrived together: it never began to stop, and the supervisor killed it after its grace period.

So the handler here only writes a byte to a pipe (``os.write`` is async-signal-safe and takes
no lock), and a daemon thread that reads the pipe makes the call.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def on_signals(
    call: Callable[[int], None], signals: Iterable[signal.Signals] = STOP_SIGNALS
) -> None:
    """From now on each of ``signals`` calls ``call(signal_number)`` on the "signals" thread,
    in the order they came. Call it from the main thread (only it may install handlers)."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)

    def handle(signum: int, _frame: FrameType | None) -> None:
        # Full only with thousands of signals not yet taken: this one would add nothing.
        with contextlib.suppress(BlockingIOError):
            os.write(write_fd, bytes((signum,)))

    def take() -> None:
        while True:
            received = os.read(read_fd, 64)
            if not received:
                return
            for signum in received:
                try:
                    call(signum)
                except Exception:
                    log.exception("handling signal %d failed", signum)

    threading.Thread(target=take, name="signals", daemon=True).start()
    for sig in signals:
        signal.signal(sig, handle)


def stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGINT and SIGTERM call ``stop()`` (again for each signal: it must be idempotent)."""
    on_signals(lambda _signum: stop())
