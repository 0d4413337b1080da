"""Keyset cursors for pages ordered newest first by (a time, an id): "<time>~<uuid>", where the
page before ended. The time is ISO 8601 in UTC with a "Z" (no "+" for a client to escape in a
query string); "-" stands for no time, for lists that put rows without one last."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from api.problems import problem

#: For ``QueryParameter(pattern=...)``: a cursor whose time is always present.
PATTERN = r"^[0-9TZ:.+\-]{19,40}~[0-9a-f\-]{36}$"
#: The same, where a row may have no time ("-").
PATTERN_OR_NO_TIME = r"^([0-9TZ:.+\-]{19,40}|-)~[0-9a-f\-]{36}$"
NO_TIME = "-"
K = TypeVar("K")


def encode(at: datetime | None, ident: uuid.UUID | str) -> str:
    """The cursor of the last row of a page."""
    when = NO_TIME if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return f"{when}~{ident}"


def decode(after: str, *, page: str) -> tuple[datetime | None, uuid.UUID]:
    """(time or None, id) of a cursor ``encode`` made; a 400 problem naming ``page`` (the
    list whose cursor it must be) otherwise."""
    return decode_keyed(after, page=page, key=_time)


def decode_keyed(after: str, *, page: str, key: Callable[[str], K]) -> tuple[K, uuid.UUID]:
    """("<key>~<uuid>") -> (``key(<key>)``, id), for lists ordered by another column than a
    time (a slot); ``key`` raises ValueError for what it cannot read, which is a 400 problem
    naming ``page``."""
    head, _, ident = after.partition("~")
    try:
        return key(head), uuid.UUID(ident)
    except ValueError:
        raise problem(
            400, "invalid-cursor", title="Invalid cursor",
            detail=f"`after` must be the cursor of a page of {page}.",
        ) from None  # fmt: skip


def _time(text: str) -> datetime | None:
    return None if text == NO_TIME else datetime.fromisoformat(text)
