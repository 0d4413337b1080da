"""Wire shapes shared by every context: the command base struct and the problem document."""

from __future__ import annotations

import msgspec


class Command(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for request bodies: unknown fields are an error, not silently dropped.

    A misspelt optional field (``partysize`` for ``party_size``) would otherwise be accepted
    and ignored, and the command would run with the default the client did not ask for.

    No text may hold a NUL character (U+0000, ``"\\u0000"`` in JSON): PostgreSQL's text
    cannot store one, so it is refused here as invalid input rather than failing at the
    database as a 500.
    """

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            if _holds_nul(getattr(self, name)):
                raise ValueError(f"`{name}` must not contain NUL characters (U+0000)")


# For text query parameters: ``QueryParameter(pattern=NO_NUL)`` (see Command).
NO_NUL = "^[^\\x00]*$"
# For integer query parameters the database compares with a bigint (offsets, log positions):
# a larger number is a 400, not an out-of-range error from PostgreSQL.
MAX_BIGINT = 2**63 - 1


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(isinstance(item, str) and "\x00" in item for item in value)
    return False


class FieldError(msgspec.Struct, kw_only=True):
    """One invalid input: where it was (``body``, ``query``, ``header``...) and why."""

    message: str
    key: str | None = None
    source: str | None = None


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details, as every error response carries them.

    ``correlation_id`` ties the answer to the server's log lines; ``errors`` lists the
    invalid fields of a 400.
    """

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    correlation_id: str | None = None
    errors: list[FieldError] | None = None
    retry_after: int | None = None
