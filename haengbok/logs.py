"""Structured logging: one configuration for structlog and the standard library.

Every process calls ``configure_logging(settings)`` once at start (the CLI does it before it
builds the app or the workers). Values bound with ``outbox.logcontext.bound`` (the API binds
``correlation_id`` and ``request_id`` per request, workers a message's ids) or with
``structlog.contextvars`` appear on every line, including lines from
libraries that log through the standard library (uvicorn, psycopg_pool, dramatiq).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import Processor

from haengbok.settings import Settings
from outbox.logcontext import merge_bound

_HANDLER_NAME = "haengbok"


QUIET_LIBRARIES = ("pgserver", "httpx", "httpcore", "urllib3")


def context_processors() -> list[Processor]:
    """The processors that add the bound ids to a line (tests capture lines with them)."""
    return [merge_bound, structlog.contextvars.merge_contextvars]


def _shared_processors() -> list[Processor]:
    return [
        # First, so that per-request and per-message ids reach every line.
        *context_processors(),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def configure_logging(
    settings: Settings, *, stream: TextIO | None = None, level: int = logging.INFO
) -> None:
    """Route structlog and stdlib logging to one handler: JSON lines or a console renderer.

    ``settings.log_json`` picks JSON lines (one object per line, for log shippers) or the
    human console format. ``stream`` defaults to stderr; tests pass a buffer.
    """
    renderer: Processor
    if settings.log_json:
        renderer = structlog.processors.JSONRenderer()
        exception_formatter: list[Processor] = [structlog.processors.format_exc_info]
    else:
        # Plain tracebacks: the rich formatter prints local variables, secrets included.
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
        # The console renderer prints tracebacks itself.
        exception_formatter = []

    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Caching would freeze the configuration at first use; tests reconfigure.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exception_formatter,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    # Calling twice must not print every line twice.
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # These log every initdb/pg_ctl line, or every HTTP request or connection, at INFO or
    # DEBUG; only their problems matter to an operator (a failed payment call shows up as the
    # retried delivery's warning, and the circuit breaker logs its changes).
    for chatty in QUIET_LIBRARIES:
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))


def reset_logging() -> None:
    """Undo ``configure_logging`` (tests that configure logging restore the defaults)."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    structlog.reset_defaults()
