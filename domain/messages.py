"""Events and commands as plain frozen dataclasses, with a JSON-safe payload form."""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
import uuid
from decimal import Decimal
from typing import Any, ClassVar, Literal, Self


def _to_json(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def _from_json(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        return _from_json(inner[0], value) if len(inner) == 1 else value
    if origin in (tuple, list):
        (item,) = typing.get_args(kind)[:1] or (Any,)
        return (tuple if origin is tuple else list)(_from_json(item, v) for v in value)
    converters: dict[Any, Any] = {
        uuid.UUID: uuid.UUID,
        Decimal: Decimal,
        dt.datetime: dt.datetime.fromisoformat,
        dt.date: dt.date.fromisoformat,
        dt.time: dt.time.fromisoformat,
    }
    convert = converters.get(kind)
    return convert(value) if convert else value


@dataclasses.dataclass(frozen=True)
class Message:
    """Base of domain events and commands. Subclasses set ``TYPE`` ("context.Name")."""

    TYPE: ClassVar[str]
    KIND: ClassVar[Literal["event", "command"]] = "event"

    def stream(self) -> str:
        """The aggregate stream this message belongs to, e.g. ``reservation-<id>``."""
        raise NotImplementedError

    def payload(self) -> dict[str, Any]:
        return {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_payload(cls, payload: typing.Mapping[str, Any]) -> Self:
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: _from_json(hints[k], v) for k, v in payload.items() if k in known})


@dataclasses.dataclass(frozen=True)
class Event(Message):
    """Something that happened."""

    KIND: ClassVar[Literal["event", "command"]] = "event"


@dataclasses.dataclass(frozen=True)
class Command(Message):
    """A request to another context, sent through the log."""

    KIND: ClassVar[Literal["event", "command"]] = "command"
