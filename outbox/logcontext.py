"""Every log line written while a message is processed carries its correlation id: the
handler's own lines and those of the broker's middleware (retries, parking) alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

_KEYS = ("correlation_id", "causation_id", "message_type", "actor_name", "message_id")


def _context(message: dramatiq.Message[Any]) -> dict[str, str]:
    ctx = {"actor_name": message.actor_name, "message_id": message.message_id}
    envelope = message.args[0] if message.args and isinstance(message.args[0], dict) else {}
    for key, field in (("correlation_id", "correlation_id"), ("causation_id", "event_id"),
                       ("message_type", "type")):  # fmt: skip
        if envelope.get(field):
            ctx[key] = str(envelope[field])
    return ctx


class CorrelationLogging(Middleware):
    """Binds the message's ids into structlog's context for the whole of its processing.

    Registered first, so its ``before`` runs before and its ``after`` after every other
    middleware (Dramatiq runs the ``after`` hooks in reverse order).
    """

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        structlog.contextvars.bind_contextvars(**_context(message))

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None,
        exception: BaseException | None = None,
    ) -> None:  # fmt: skip
        structlog.contextvars.unbind_contextvars(*_KEYS)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        structlog.contextvars.unbind_contextvars(*_KEYS)


@contextmanager
def bound_message(message: Any) -> Iterator[None]:
    """Bind one message's ids while it runs inside another's processing (a batch's part)."""
    with structlog.contextvars.bound_contextvars(**_context(message)):
        yield
