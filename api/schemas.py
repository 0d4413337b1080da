"""Wire shapes shared by every context: the command base struct and the problem document."""

from __future__ import annotations

import msgspec


class Command(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for request bodies: unknown fields are an error, not silently dropped.

    A misspelt optional field (``partysize`` for ``party_size``) would otherwise be accepted
    and ignored, and the command would run with the default the client did not ask for.
    """


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
