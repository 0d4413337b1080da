"""OpenAPI: the document at ``/schema`` and helpers that document commands and problems.

Litestar documents a 400 in its own exception shape; every route here answers errors as RFC
9457 problems, so controllers pass ``responses=command_responses(...)`` (or
``problem_responses(...)``) and ``response_headers=COMMAND_RESPONSE_HEADERS``.
"""

from __future__ import annotations

from litestar.datastructures import ResponseHeader
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components

from api.auth import BEARER_SECURITY_SCHEME, SECURITY_SCHEME
from api.problems import PROBLEM_MEDIA_TYPE
from api.schemas import Problem

OPENAPI_PATH = "/schema"
API_VERSION = "0.1.0"
_PROBLEM_DESCRIPTIONS = {
    400: "Malformed JSON, unknown or invalid fields (listed in `errors`)",
    401: "Missing, expired or invalid bearer token",
    403: "The token lacks the required role",
    404: "No such resource",
    409: "Concurrent modification; retry",
    413: "Request body too large",
    422: "Idempotency-Key reused with a different request",
    503: "Temporarily unavailable; retry after `Retry-After` seconds",
}
COMMAND_PROBLEMS = (400, 401, 403, 409, 413, 422, 503)
COMMAND_RESPONSE_HEADERS = [
    ResponseHeader(
        name="Location", documentation_only=True, description="Where the resource can be read"
    ),
    ResponseHeader(
        name="X-Log-Position",
        documentation_only=True,
        description="Log position of the command's last event; pass it to queries to read "
        "your own write",
    ),
]


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI responses for the given error statuses, all ``application/problem+json``."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            description=_PROBLEM_DESCRIPTIONS.get(status, "Problem details"),
            generate_examples=False,
        )
        for status in statuses
    }


def command_responses(settled: type | None = None) -> dict[int, ResponseSpec]:
    """Responses of a command route: its problems and, with ``settled``, the 200 of a wait."""
    responses = problem_responses(*COMMAND_PROBLEMS)
    if settled is not None:
        responses[200] = ResponseSpec(
            data_container=settled,
            description="Settled within the `Prefer: wait=N` the client asked for",
            generate_examples=False,
        )
    return responses


def openapi_config() -> OpenAPIConfig:
    """``/schema`` (Scalar), ``/schema/swagger``, ``/schema/openapi.json``; bearer auth."""
    return OpenAPIConfig(
        title="Haengbok API",
        version=API_VERSION,
        description="Commands answer 202 with Location and X-Log-Position; errors are RFC 9457 "
        "problem details (application/problem+json).",
        path=OPENAPI_PATH,
        render_plugins=[
            ScalarRenderPlugin(path=["/", "/scalar"]),
            SwaggerRenderPlugin(path="/swagger"),
            JsonRenderPlugin(path="/openapi.json"),
        ],
        components=Components(security_schemes={SECURITY_SCHEME: BEARER_SECURITY_SCHEME}),
        # Every route needs the token unless it declares ``security=NO_SECURITY``.
        security=[{SECURITY_SCHEME: []}],
        use_handler_docstrings=True,
    )
