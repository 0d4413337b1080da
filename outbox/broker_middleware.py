"""The broker's middleware chain: Dramatiq's defaults, adapted to messages that live in pgmq."""

from __future__ import annotations

import logging
from time import monotonic
from typing import TYPE_CHECKING, Any, cast

import dramatiq
from dramatiq.errors import ActorNotFound
from dramatiq.middleware import CurrentMessage, Middleware, Retries, TimeLimit, default_middleware

from outbox.broker_message import PgmqMessageProxy
from outbox.retries import PgmqRetries, QuietTransientFailures
from sql import query

if TYPE_CHECKING:
    from outbox.broker import PgmqBroker

log = logging.getLogger(__name__)
# The logger of Dramatiq's worker threads (dramatiq.logging.get_logger(module, class)).
WORKER_THREAD_LOGGER = "dramatiq.worker.WorkerThread"


def pgmq_middleware(
    *, time_limit_ms: int, max_retries: int, min_backoff_ms: int, max_backoff_ms: int
) -> list[Middleware]:
    """Dramatiq's default middleware, with ``PgmqRetries`` for ``Retries``, the time limit set
    below the visibility timeout, ``CurrentMessage`` (transactional actors need it) and
    ``LeaseRenewal``."""
    chain: list[Middleware] = []
    for kind in default_middleware:
        if kind is Retries:
            retries = PgmqRetries(
                max_retries=max_retries, min_backoff=min_backoff_ms, max_backoff=max_backoff_ms
            )
            chain.append(retries)
        elif kind is TimeLimit:
            chain.append(TimeLimit(time_limit=time_limit_ms))
        else:
            chain.append(kind())
    chain += [CurrentMessage(), LeaseRenewal()]
    quiet_transient_failures()
    return chain


def quiet_transient_failures() -> None:
    """Dramatiq's worker logs every failure with its traceback; a transient one is logged by
    ``PgmqRetries`` in one line instead (``QuietTransientFailures``). Idempotent."""
    worker_log = logging.getLogger(WORKER_THREAD_LOGGER)
    if not any(isinstance(f, QuietTransientFailures) for f in worker_log.filters):
        worker_log.addFilter(QuietTransientFailures())


def time_limit_ms(broker: dramatiq.Broker, message: Any) -> float:
    """The time limit a message runs under: the message's, its actor's, else the broker's."""
    limit = message.options.get("time_limit")
    if limit is None:
        try:
            limit = broker.get_actor(message.actor_name).options.get("time_limit")
        except ActorNotFound:
            limit = None
    return float(limit or cast("PgmqBroker", broker).actor_time_limit_ms)


def attempts_allowed(broker: dramatiq.Broker, message: dramatiq.Message[Any]) -> int | None:
    """How many deliveries ``message`` gets in all (None: no limit known here)."""
    for middleware in broker.middleware:
        if isinstance(middleware, PgmqRetries):
            return middleware.attempts_allowed(broker, message)
    return None


class LeaseRenewal(Middleware):
    """Restart a message's visibility timeout when it starts after a long wait in memory.

    The timeout runs from the read, but a prefetched message may wait behind slow ones before
    it starts; it must still finish (within its time limit) before it becomes visible again.
    Messages that start promptly cost nothing here.
    """

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        if not isinstance(message, PgmqMessageProxy):
            return
        pgmq_broker = cast("PgmqBroker", broker)
        vt_ms = pgmq_broker.visibility_timeout_seconds * 1000
        waited_ms = (monotonic() - message.leased_at) * 1000
        if waited_ms <= (vt_ms - time_limit_ms(broker, message)) / 2:
            return
        params = {"queue": message.queue_name, "msg_ids": message.msg_ids, "delay_ms": vt_ms}
        pgmq_broker.run(lambda conn: conn.execute(query("broker.set_visible_in"), params))
        message.leased_at = monotonic()
        log.debug(
            "renewed the lease of message %s after %.0f ms in memory", message.msg_id, waited_ms
        )
