"""What a projector is: a named reader of the event log that owns one read-model table.

A read model that needs several tables is several projectors, each with its own checkpoint, so
each table can be rebuilt and caught up on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg import sql

from outbox.envelope import Envelope

# The name ends up in a NOTIFY channel (63-byte identifier limit) and in a checkpoint row.
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# pg identifiers are cut at 63 bytes; the rebuild suffix must survive whole.
_MAX_IDENTIFIER = 63


@dataclass(frozen=True, slots=True)
class Table:
    """A schema-qualified table name, kept as parts so SQL always quotes it as an identifier."""

    schema: str
    name: str

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    def with_suffix(self, suffix: str) -> Table:
        """A sibling table name, shortening the base so the suffix is never truncated away."""
        return Table(self.schema, self.name[: _MAX_IDENTIFIER - len(suffix)] + suffix)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


class Projector(Protocol):
    """A read-model writer.

    ``apply`` receives the handled events of one batch in ``global_position`` order and writes
    them to ``table`` (the live table, or a fresh one during a rebuild) inside the runner's
    transaction; it must not commit. Events of one stream arrive in version order, but a row
    another event type would have created may be missing (that type may be filtered out, or the
    read model may have been rebuilt from a later point), so writes are upserts, never
    "UPDATE and expect a row".
    """

    @property
    def name(self) -> str:
        """Checkpoint name; also names the progress channel ``haengbok_projection_<name>``."""
        ...

    @property
    def message_types(self) -> frozenset[str]:
        """The event types ``apply`` receives; the others are skipped in SQL."""
        ...

    @property
    def table(self) -> Table:
        """The live read-model table (created by a migration)."""
        ...

    def create_table(self, conn: psycopg.Connection[Any], table: sql.Identifier) -> None:
        """Create an empty read-model table named ``table``, with its indexes.

        Let PostgreSQL name constraints and indexes (``<table>_pkey``...): a rebuild creates
        the new table next to the live one, so fixed names would collide.
        """
        ...

    def apply(
        self, conn: psycopg.Connection[Any], envelopes: Sequence[Envelope], table: sql.Identifier
    ) -> None:
        """Write one batch of events to ``table`` in the caller's transaction."""
        ...


def check_projector(projector: Projector) -> None:
    """Reject a projector whose name cannot be a channel suffix or that handles nothing."""
    if not _NAME.match(projector.name):
        raise ValueError(f"projector name {projector.name!r} must match {_NAME.pattern}")
    if not projector.message_types:
        raise ValueError(f"projector {projector.name!r} handles no message types")


def progress_channel(projection_name: str) -> str:
    """The channel a runner notifies with the new checkpoint after each committed batch."""
    return f"haengbok_projection_{projection_name}"
