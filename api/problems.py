"""RFC 9457 problem details for every error the API returns.

One registry maps domain and persistence exceptions to problems (status, title, type URI);
the product lines extend it with their own exceptions before building the app. Litestar's
own HTTP exceptions (validation, 401, 404, 405, 413...) and anything unexpected go through the
same renderer, so a client never sees an error in another shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import msgspec
import psycopg
import psycopg_pool
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.types import ExceptionHandlersMap

from api.middleware import request_ids
from api.schemas import FieldError, Problem
from outbox.log import ConcurrencyConflict

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TYPE_PREFIX = "urn:haengbok:problem:"

log = structlog.get_logger("api.problems")


def problem_type(slug: str) -> str:
    """The type URI of one of our problem kinds, e.g. ``problem_type("validation-error")``."""
    return _TYPE_PREFIX + slug


def problem(
    status: int,
    slug: str | None = None,
    *,
    title: str | None = None,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProblemDetailsException:
    """An exception that renders as the given problem; raise it from handlers and helpers."""
    return ProblemDetailsException(
        status_code=status,
        type_=problem_type(slug) if slug else None,
        title=title or HTTPStatus(status).phrase,
        detail=detail or "",
        headers=dict(headers or {}),
    )


class TemporarilyUnavailable(Exception):
    """A dependency is overloaded or down (open circuit, full queue): retry after a pause."""

    def __init__(self, detail: str, retry_after_seconds: int = 5) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True, slots=True)
class ProblemType:
    """What an exception type means for an HTTP client."""

    status: int
    title: str
    type_uri: str = "about:blank"
    # None: the exception's own message is the detail (domain errors are written for clients).
    detail: str | Callable[[Exception], str] | None = None
    headers: Callable[[Exception], Mapping[str, str]] | None = None


@dataclass
class ProblemRegistry:
    """Exception type -> problem; the most specific registered base class wins."""

    _types: dict[type[Exception], ProblemType] = field(default_factory=dict)

    def register(self, exc_type: type[Exception], problem_type: ProblemType) -> None:
        """Map ``exc_type`` (and its subclasses) to ``problem_type``."""
        self._types[exc_type] = problem_type

    def lookup(self, exc: Exception) -> ProblemType | None:
        """The problem for ``exc``, walking its class hierarchy; None when unregistered."""
        for klass in type(exc).__mro__:
            if klass in self._types:
                return self._types[klass]
        return None

    def copy(self) -> ProblemRegistry:
        """An independent registry to extend (each app gets its own)."""
        return ProblemRegistry(dict(self._types))

    def exception_handlers(self) -> ExceptionHandlersMap:
        """Litestar exception handlers: registered types, HTTP exceptions, then anything else."""
        handlers: ExceptionHandlersMap = {exc: self._handle_registered for exc in self._types}
        handlers[HTTPException] = _handle_http_exception
        handlers[Exception] = _handle_unexpected
        return handlers

    def _handle_registered(self, request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        found = self.lookup(exc)
        if found is None:  # pragma: no cover - Litestar only routes registered types here
            return _handle_unexpected(request, exc)
        if found.detail is None:
            detail = str(exc)
        elif isinstance(found.detail, str):
            detail = found.detail
        else:
            detail = found.detail(exc)
        headers = dict(found.headers(exc)) if found.headers else {}
        if found.status >= 500:
            log.warning(
                "request_failed", status=found.status, error=type(exc).__name__, detail=str(exc)
            )
        return problem_response(
            request,
            status=found.status,
            title=found.title,
            type_uri=found.type_uri,
            detail=detail,
            headers=headers,
        )


def default_problems() -> ProblemRegistry:
    """The platform's own mappings; product lines ``copy()`` and extend it."""
    registry = ProblemRegistry()
    registry.register(
        ConcurrencyConflict,
        ProblemType(
            409,
            "Concurrent modification",
            problem_type("concurrency-conflict"),
            detail="Another request changed this resource at the same time; retry the request.",
        ),
    )
    # Serialization failures and deadlocks: nothing was written, the same request can succeed.
    registry.register(
        psycopg.errors.TransactionRollback,
        ProblemType(
            409,
            "Concurrent modification",
            problem_type("concurrency-conflict"),
            detail="The database aborted this transaction to keep it consistent; retry.",
        ),
    )
    registry.register(
        TemporarilyUnavailable,
        ProblemType(
            503,
            "Service temporarily unavailable",
            problem_type("temporarily-unavailable"),
            headers=_retry_after_from_exc,
        ),
    )
    # The pool had no free connection in time, or the database is unreachable: transient.
    for exc_type in (psycopg_pool.PoolTimeout, psycopg.OperationalError):
        registry.register(
            exc_type,
            ProblemType(
                503,
                "Database unavailable",
                problem_type("database-unavailable"),
                detail="The database is busy or unreachable; retry later.",
                headers=lambda _exc: {"Retry-After": "2"},
            ),
        )
    return registry


def _retry_after_from_exc(exc: Exception) -> Mapping[str, str]:
    seconds = getattr(exc, "retry_after_seconds", 5)
    return {"Retry-After": str(int(seconds))}


def problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    title: str | None = None,
    type_uri: str = "about:blank",
    detail: str | None = None,
    errors: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[bytes]:
    """Render one problem document; every error response of the API is built here."""
    body = Problem(
        type=type_uri,
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail or None,
        instance=request.url.path,
        correlation_id=str(request_ids(request.scope).correlation_id),
        errors=errors,
    )
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def _source(source: Any) -> str | None:
    """Where the bad value was: "body", "query", "path", "header" or "cookie". Litestar gives
    query and path errors as its ParamType enum, whose str() is "ParamType.QUERY"."""
    if source is None:
        return None
    return str(getattr(source, "value", source))


def _field_errors(extra: Any) -> list[FieldError] | None:
    if not isinstance(extra, list):
        return None
    errors = [
        FieldError(
            message=str(item.get("message", "")),
            key=item.get("key"),
            source=_source(item.get("source")),
        )
        for item in extra
        if isinstance(item, Mapping)
    ]
    return errors or None


def _handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    headers = dict(exc.headers or {})
    # Litestar fills an empty detail with the status phrase, which would repeat the title.
    detail = None if exc.detail == HTTPStatus(status).phrase else exc.detail
    if isinstance(exc, ProblemDetailsException):
        return problem_response(
            request,
            status=status,
            title=exc.title,
            type_uri=exc.type_ or "about:blank",
            detail=detail,
            headers=headers,
        )
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="haengbok"')
    if status >= 500:
        # Litestar's own 5xx carry internal wording; log it, tell the client nothing more.
        log.error("request_failed", status=status, detail=exc.detail)
        return problem_response(request, status=status, headers=headers)
    errors = _field_errors(exc.extra) if isinstance(exc, ValidationException) else None
    slug_type = problem_type("validation-error") if errors else "about:blank"
    return problem_response(
        request,
        status=status,
        title="Request validation failed" if errors else None,
        type_uri=slug_type,
        detail=detail,
        errors=errors,
        headers=headers,
    )


def _handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    ids = request_ids(request.scope)
    # The traceback goes to the log (with the ids), never to the client.
    log.error(
        "unhandled_error",
        exc_info=exc,
        correlation_id=str(ids.correlation_id),
        request_id=str(ids.request_id),
        method=request.method,
        path=request.url.path,
    )
    return problem_response(
        request,
        status=500,
        type_uri=problem_type("internal-error"),
        detail="An unexpected error occurred; quote the correlation id when reporting it.",
    )
