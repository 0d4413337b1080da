"""Events and commands as plain frozen dataclasses, with a JSON-safe payload form."""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
import uuid
from collections.abc import Callable
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


_SCALARS: dict[Any, Callable[[Any], Any]] = {
    uuid.UUID: uuid.UUID,
    Decimal: Decimal,
    dt.datetime: dt.datetime.fromisoformat,
    dt.date: dt.date.fromisoformat,
    dt.time: dt.time.fromisoformat,
}


def _keep(value: Any) -> Any:
    return value


def _decoder(kind: Any) -> Callable[[Any], Any]:
    """How to turn the JSON form of a field of type ``kind`` back into its value (None stays
    None). Worked out once per field; decoding then costs only the conversions."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        return _decoder(inner[0]) if len(inner) == 1 else _keep
    if origin in (tuple, list):
        (item,) = typing.get_args(kind)[:1] or (Any,)
        each, make = _decoder(item), (tuple if origin is tuple else list)

        def sequence(value: Any) -> Any:
            return None if value is None else make(each(v) for v in value)

        return sequence
    convert = _SCALARS.get(kind)
    if convert is None:
        return _keep

    def scalar(value: Any) -> Any:
        return None if value is None else convert(value)

    return scalar


_DECODERS: dict[type, dict[str, Callable[[Any], Any]]] = {}


def _field_decoders(cls: type) -> dict[str, Callable[[Any], Any]]:
    decoders = _DECODERS.get(cls)
    if decoders is None:  # a race only computes the same dict twice
        hints = typing.get_type_hints(cls)
        decoders = {f.name: _decoder(hints[f.name]) for f in dataclasses.fields(cls)}
        _DECODERS[cls] = decoders
    return decoders


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
        decoders = _field_decoders(cls)
        return cls(**{k: decoders[k](v) for k, v in payload.items() if k in decoders})


@dataclasses.dataclass(frozen=True)
class Event(Message):
    """Something that happened."""

    KIND: ClassVar[Literal["event", "command"]] = "event"


@dataclasses.dataclass(frozen=True)
class Command(Message):
    """A request to another context, sent through the log."""

    KIND: ClassVar[Literal["event", "command"]] = "command"
