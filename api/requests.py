"""The API's request class: JSON bodies are checked strictly before Litestar converts them.

Litestar decodes a JSON body into plain Python values and then converts them to the handler's
``data`` type in msgspec's lax mode, the mode it needs for query and path parameters (which
arrive as text). For a body that mode is wrong: ``"party_size": "2"`` became 2 and
``"score": "5"`` a rating of 5, while ``2.5`` and ``true`` were refused. Here the body of a
route whose ``data`` is a msgspec Struct is first decoded with msgspec into that Struct in its
strict mode, so a value of the wrong JSON type is a 400 naming the field, as a missing or
out-of-range one already is; Litestar's own conversion then runs on a body known to be right.

A body sent as anything but JSON (``Content-Type: text/plain``, a form) is a 415 rather than
being parsed as JSON anyway. A request without a Content-Type is taken as JSON, as before.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

from api.problems import problem

# "$.party_size", "$.slots[2]", "$" (the body itself): msgspec's path to the bad value.
_AT = re.compile(r" - at `\$\.?(?P<key>[^`]*)`$")


class StrictJsonRequest(Request[Any, Any, Any]):
    """``Litestar(request_class=StrictJsonRequest)``: see the module docstring."""

    async def json(self) -> Any:
        # Checked on every call (a handler may ask twice): it costs a few microseconds.
        body = await self.body()
        if body:
            _require_json_media_type(self.headers.get("content-type"))
            shape = _body_struct(self)
            if shape is not None:
                try:
                    msgspec.json.decode(body, type=shape)
                except msgspec.ValidationError as exc:
                    raise _invalid_body(self, exc) from None
                except msgspec.DecodeError:
                    pass  # not JSON at all: Litestar's own decoding answers that 400
        return await super().json()


def _body_struct(request: Request[Any, Any, Any]) -> type[msgspec.Struct] | None:
    field = request.route_handler.parsed_data_field
    shape = field.annotation if field is not None else None
    if isinstance(shape, type) and issubclass(shape, msgspec.Struct):
        return shape
    return None


def _require_json_media_type(content_type: str | None) -> None:
    if content_type is None:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return
    raise problem(
        415,
        "unsupported-media-type",
        title="Unsupported media type",
        detail=f"The body must be JSON (Content-Type: application/json), not {media_type!r}.",
    )


def _invalid_body(request: Request[Any, Any, Any], exc: msgspec.ValidationError) -> Exception:
    message = str(exc)
    found = _AT.search(message)
    key = found.group("key") if found else None
    return ValidationException(
        detail=f"Validation failed for {request.method} {request.url.path}",
        extra=[
            {
                "message": message[: found.start()] if found else message,
                "key": key or None,
                "source": "body",
            }
        ],
    )
