"""Correlation: every request carries a correlation id (the client's or a new one) and its own
request id. Both are echoed on the response, bound into the log context and handed to
command handlers, which stamp them on the events they append.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.exceptions import ValidationException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from outbox.logcontext import bound

CORRELATION_HEADER = "X-Correlation-ID"
REQUEST_ID_HEADER = "X-Request-ID"
_STATE_KEY = "haengbok.request_ids"


@dataclass(frozen=True, slots=True)
class RequestIds:
    """The conversation (``correlation_id``) and this one request (``request_id``).

    ``rejected`` holds a client-supplied correlation header that was not a UUID; the
    request then fails with a 400, and the response still carries a fresh id.
    """

    correlation_id: uuid.UUID
    request_id: uuid.UUID
    rejected: str | None = None


def _parse(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def request_ids(scope: Scope) -> RequestIds:
    """The ids of this request, decided once on first use and kept in the scope state.

    Lazy on purpose: a 404 never reaches route middleware, yet its problem document and its
    response headers still need the same ids.
    """
    state: dict[str, Any] = scope.setdefault("state", {})
    ids = state.get(_STATE_KEY)
    if isinstance(ids, RequestIds):
        return ids
    request_id = uuid.uuid4()
    raw = _header(scope, CORRELATION_HEADER.lower().encode())
    supplied = _parse(raw) if raw is not None else None
    # A request that starts a conversation is its own cause: correlation id = request id.
    ids = RequestIds(
        correlation_id=supplied or request_id,
        request_id=request_id,
        rejected=raw if raw is not None and supplied is None else None,
    )
    state[_STATE_KEY] = ids
    return ids


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None


class CorrelationMiddleware(ASGIMiddleware):
    """Rejects malformed correlation ids and binds both ids into the log context."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Bind ``correlation_id`` / ``request_id`` for every log line of this request."""
        ids = request_ids(scope)
        with bound(correlation_id=str(ids.correlation_id), request_id=str(ids.request_id)):
            if ids.rejected is not None:
                raise ValidationException(
                    detail=f"{CORRELATION_HEADER} must be a UUID",
                    extra=[
                        {
                            "message": "must be a UUID",
                            "key": CORRELATION_HEADER,
                            "source": "header",
                        }
                    ],
                )
            await next_app(scope, receive, send)


async def echo_request_ids(message: Message, scope: Scope) -> None:
    """``before_send`` hook: put both ids on every HTTP response, errors and 404s included."""
    if scope["type"] != ScopeType.HTTP or message["type"] != "http.response.start":
        return
    ids = request_ids(scope)
    headers = MutableScopeHeaders.from_message(message)
    headers[CORRELATION_HEADER] = str(ids.correlation_id)
    headers[REQUEST_ID_HEADER] = str(ids.request_id)
