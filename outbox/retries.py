"""Retries that keep the message in its pgmq queue (Dramatiq's ``Retries``, done natively).

Dramatiq's own middleware re-enqueues a copy with an ``eta`` that the worker holds in memory.
Here a failed message stays where it is and only its visibility moves forward (``pgmq.set_vt``):
nothing lives in worker memory, the attempt count is pgmq's ``read_ct`` (which survives worker
crashes), and the head of an ordered FIFO group keeps blocking its group while it backs off, so
per-group order survives retries. When the attempts are used up the message is parked
(``ops.parked_message``) instead of being dropped.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.errors import ActorNotFound, Retry
from dramatiq.middleware import Middleware

from outbox import wire
from outbox.broker_message import PgmqBatchProxy, PgmqMessageProxy
from outbox.errors import is_transient
from outbox.parking import error_text

log = logging.getLogger(__name__)

DEFAULT_MAX_RETRIES = 5
DEFAULT_MIN_BACKOFF_MS = 200
DEFAULT_MAX_BACKOFF_MS = 30_000


def backoff_ms(retries: int, min_backoff: int, max_backoff: int) -> int:
    """Exponential backoff with "equal jitter": half fixed, half random, capped at max_backoff.

    The jitter spreads retries of messages that failed together (a database blip) apart.
    """
    ceiling = min(max_backoff, min_backoff * 2 ** min(retries, 32))
    return int(ceiling / 2 + random.uniform(0, ceiling / 2))


class PgmqRetries(Middleware):
    """Retry failed messages in place with backoff; park them when attempts run out.

    Honours the actor (and message) options of Dramatiq's ``Retries``: ``max_retries``,
    ``min_backoff``, ``max_backoff`` (milliseconds), ``retry_when(retries, exc)`` and
    ``throws``; a ``dramatiq.Retry(delay=...)`` sets its own delay. A message runs at most
    ``max_retries + 1`` times.
    """

    def __init__(
        self,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        min_backoff: int = DEFAULT_MIN_BACKOFF_MS,
        max_backoff: int = DEFAULT_MAX_BACKOFF_MS,
        retry_when: Callable[[int, BaseException], bool] | None = None,
    ) -> None:
        self.max_retries = max_retries
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.retry_when = retry_when
        self._transient = _TransientFailures()

    @property
    def actor_options(self) -> set[str]:
        return {"max_retries", "min_backoff", "max_backoff", "retry_when", "throws"}

    def option(self, broker: dramatiq.Broker, message: Any, name: str, default: Any) -> Any:
        """A retry option: the message's, else the actor's, else this middleware's."""
        if name in message.options:
            return message.options[name]
        try:
            actor = broker.get_actor(message.actor_name)
        except ActorNotFound:
            return default
        return actor.options.get(name, default)

    def attempts_allowed(self, broker: dramatiq.Broker, message: Any) -> int | None:
        """How many deliveries a message gets in all; None when ``retry_when`` decides alone."""
        if self.option(broker, message, "retry_when", self.retry_when) is not None:
            return None
        max_retries = self.option(broker, message, "max_retries", self.max_retries)
        return None if max_retries is None else int(max_retries) + 1

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is None:
            self._transient.forget(message.message_id)
            return
        if isinstance(message, PgmqBatchProxy):
            # A failed batch is split by its consumer; each message then runs alone, and
            # its own failures are retried or parked here.
            return
        if is_transient(exception):
            # The database, or an outside service, is unavailable: back off and try again,
            # and give the attempt back so an outage never dead-letters healthy messages.
            # read_ct does not grow then, so the back-off counts the message's transient
            # failures itself, and it waits at least as long as the failure asks (an open
            # circuit's cool-down), up to max_backoff.
            failures = self._transient.failed(message.message_id)
            max_backoff = int(self.option(broker, message, "max_backoff", self.max_backoff))
            delay = backoff_ms(
                failures - 1,
                int(self.option(broker, message, "min_backoff", self.min_backoff)),
                max_backoff,
            )
            asked = retry_after_ms(exception)
            if asked is not None:
                delay = min(max(delay, asked), max_backoff)
            log.warning(
                "message %s could not run now (%s: %s); retrying in %d ms, attempt not counted",
                message.message_id, type(exception).__name__, exception, delay,
            )  # fmt: skip
            proxy = _require_pgmq_proxy(message)
            proxy.retry_in_ms = delay
            proxy.attempt_counts = False
            return
        self._transient.forget(message.message_id)
        throws = self.option(broker, message, "throws", None)
        if throws and isinstance(exception, throws):
            log.info(
                "message %s raised %s, which its actor throws: parking it",
                message.message_id,
                type(exception).__name__,
            )
            self._give_up(message, exception)
            return
        # read_ct counts this delivery too; retries so far is one less.
        retries = int(message.options.get(wire.READ_COUNT_OPTION, 1)) - 1
        if not self._should_retry(broker, message, retries, exception):
            log.warning(
                "retries exhausted for message %s after %d attempts: parking it",
                message.message_id,
                retries + 1,
            )
            self._give_up(message, exception)
            return
        if isinstance(exception, Retry) and exception.delay is not None:
            delay = int(exception.delay)
        else:
            delay = backoff_ms(
                retries,
                int(self.option(broker, message, "min_backoff", self.min_backoff)),
                int(self.option(broker, message, "max_backoff", self.max_backoff)),
            )
        log.info("retrying message %s in %d ms", message.message_id, delay)
        _require_pgmq_proxy(message).retry_in_ms = delay

    def _should_retry(
        self, broker: dramatiq.Broker, message: Any, retries: int, exc: BaseException
    ) -> bool:
        retry_when = self.option(broker, message, "retry_when", self.retry_when)
        if retry_when is not None:
            return bool(retry_when(retries, exc))
        max_retries = self.option(broker, message, "max_retries", self.max_retries)
        return max_retries is None or retries < int(max_retries)

    @staticmethod
    def _give_up(message: Any, exc: BaseException) -> None:
        proxy = _require_pgmq_proxy(message)
        proxy.park_reason = error_text(exc)
        proxy.retry_in_ms = None
        message.fail()


def retry_after_ms(exc: BaseException) -> int | None:
    """How long a failure asks to wait (``retry_after_seconds``, e.g. the rest of an open
    circuit's cool-down), in milliseconds; None when it does not say."""
    seconds = getattr(exc, "retry_after_seconds", None)
    if isinstance(seconds, int | float) and seconds > 0:
        return int(seconds * 1000)
    return None


class _TransientFailures:
    """Consecutive transient failures per message id, in this process (a restart starts the
    back-off again, which is harmless); bounded, oldest forgotten first."""

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def failed(self, message_id: str) -> int:
        with self._lock:
            count = self._counts.pop(message_id, 0) + 1
            self._counts[message_id] = count
            while len(self._counts) > self.MAX_ENTRIES:
                self._counts.popitem(last=False)
            return count

    def forget(self, message_id: str) -> None:
        with self._lock:
            self._counts.pop(message_id, None)


class QuietTransientFailures(logging.Filter):
    """On Dramatiq's worker logger: drops its "Failed to process message ... with unhandled
    exception" record, traceback and all, when the failure is transient. ``PgmqRetries`` logs
    one line for it (what failed and when it runs again): an outage of the payment provider
    made thousands of tracebacks a minute."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return exc is None or not is_transient(exc)


def _require_pgmq_proxy(message: Any) -> PgmqMessageProxy:
    if not isinstance(message, PgmqMessageProxy):
        raise TypeError("PgmqRetries works only with messages delivered by PgmqBroker")
    return message
