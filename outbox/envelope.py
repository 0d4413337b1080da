"""Messages as they are appended (``NewMessage``) and as they are read back (``Envelope``)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

MessageKind = Literal["event", "command"]
_TYPE = re.compile(r"^[a-z_]+\.[A-Za-z][A-Za-z0-9]*$")


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Who and what caused the messages a unit of work appends.

    ``correlation_id`` follows a conversation across every hop (HTTP request → events → saga
    steps); ``causation_id`` names the one message (or request) that directly caused these.
    """

    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    actor: str | None = None

    @classmethod
    def new(cls, actor: str | None = None) -> MessageContext:
        rid = uuid.uuid4()
        return cls(correlation_id=rid, causation_id=rid, actor=actor)

    @classmethod
    def caused_by_envelope(cls, envelope: Envelope) -> MessageContext:
        """The context for messages a consumer emits while handling ``envelope``."""
        return cls(envelope.correlation_id, envelope.event_id, envelope.actor)


@dataclass(frozen=True, slots=True)
class NewMessage:
    """An event (something happened) or a command (please do this) for the log."""

    type: str
    stream: str
    payload: Mapping[str, Any]
    kind: MessageKind = "event"
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        if not _TYPE.match(self.type):
            raise ValueError(f"message type {self.type!r} must look like 'context.TypeName'")
        if not self.stream:
            raise ValueError("stream must not be empty")


@dataclass(frozen=True, slots=True)
class Appended:
    """Where an appended message landed; ``position`` is what read-your-writes waits on."""

    position: int
    event_id: uuid.UUID
    stream: str
    version: int


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message read back from the log, as consumers and projectors receive it."""

    position: int
    global_position: int | None
    event_id: uuid.UUID
    kind: MessageKind
    type: str
    stream: str
    version: int
    payload: Mapping[str, Any]
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    actor: str | None
    occurred_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Envelope:
        return cls(**{name: row[name] for name in FIELDS})

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form carried inside a Dramatiq message."""
        return {
            "position": self.position,
            "global_position": self.global_position,
            "event_id": str(self.event_id),
            "kind": self.kind,
            "type": self.type,
            "stream": self.stream,
            "version": self.version,
            "payload": dict(self.payload),
            "correlation_id": str(self.correlation_id),
            "causation_id": str(self.causation_id) if self.causation_id else None,
            "actor": self.actor,
            "occurred_at": self.occurred_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Envelope:
        return cls(
            position=int(data["position"]),
            global_position=data.get("global_position"),
            event_id=uuid.UUID(data["event_id"]),
            kind=data["kind"],
            type=data["type"],
            stream=data["stream"],
            version=int(data["version"]),
            payload=data["payload"],
            correlation_id=uuid.UUID(data["correlation_id"]),
            causation_id=uuid.UUID(data["causation_id"]) if data.get("causation_id") else None,
            actor=data.get("actor"),
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
        )


#: The envelope's fields in their order (what a row must hold to become one).
FIELDS = tuple(Envelope.__dataclass_fields__)
