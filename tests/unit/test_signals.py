"""Stop signals are handled on a thread of their own (haengbok.signals): a handler that took a
lock could land while the main thread holds that very lock, and wait for it for ever."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from haengbok.signals import on_signals

# The main thread holds the stop event's own lock when the signal lands, as it does for a few
# bytecodes on its way into and out of Event.wait(). A handler calling stop.set() itself would
# wait for that lock in the same thread: the child would never print "stopped".
HELD_WHEN_SIGNALLED = textwrap.dedent(
    """
    import os, signal, threading
    from haengbok.signals import stop_on_signals

    stop = threading.Event()
    stop_on_signals(stop.set)
    with stop._cond:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10_000):
            pass  # the handler runs between these bytecodes
        print("handler returned", flush=True)
    print("stopped" if stop.wait(10) else "not stopped", flush=True)
    """
)


def test_a_signal_landing_while_the_main_thread_holds_the_lock_still_stops() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HELD_WHEN_SIGNALLED],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.stdout.split() == ["handler", "returned", "stopped"], done.stderr
    assert done.returncode == 0


def test_each_signal_is_passed_on_in_order() -> None:
    script = textwrap.dedent(
        """
        import os, signal, threading
        from haengbok.signals import on_signals

        seen, done = [], threading.Event()
        def call(signum):
            seen.append(signal.Signals(signum).name)
            if len(seen) == 3:
                done.set()
        on_signals(call)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGTERM):
            os.kill(os.getpid(), sig)
        done.wait(10)
        print(" ".join(seen), flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.split() == ["SIGINT", "SIGTERM", "SIGTERM"], done.stderr


def test_a_failing_call_is_logged_and_later_signals_still_pass() -> None:
    script = textwrap.dedent(
        """
        import logging, os, signal, threading
        from haengbok.signals import on_signals

        logging.basicConfig(level=logging.ERROR)
        calls, done = [], threading.Event()
        def call(signum):
            calls.append(signum)
            if len(calls) == 1:
                raise RuntimeError("the first stop failed")
            done.set()
        on_signals(call)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        print("second call ran" if done.wait(10) else "stuck", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "second call ran", done.stderr
    assert "handling signal 15 failed" in done.stderr
    assert "the first stop failed" in done.stderr


def test_only_the_main_thread_may_install_them() -> None:
    # Python's own rule, kept: on_signals raises rather than silently not handling.
    import threading

    raised: list[BaseException] = []

    def install() -> None:
        try:
            on_signals(lambda _signum: None)
        except ValueError as exc:
            raised.append(exc)

    thread = threading.Thread(target=install)
    thread.start()
    thread.join()
    assert raised and "main thread" in str(raised[0])
