"""Turning log envelopes back into the Dining contract's typed messages."""

from __future__ import annotations

import uuid

from domain.dining import messages as dining
from domain.messages import Message
from outbox.envelope import Envelope

# Every message class the contract module defines, by its TYPE.
MESSAGE_CLASSES: dict[str, type[Message]] = {
    obj.TYPE: obj
    for obj in vars(dining).values()
    if isinstance(obj, type) and issubclass(obj, Message) and obj.__module__ == dining.__name__
}


def decode(envelope: Envelope) -> Message:
    """The typed message an envelope carries; a type outside the contract is a bug (KeyError)."""
    return MESSAGE_CLASSES[envelope.type].from_payload(envelope.payload)


def types_of(*classes: type[Message]) -> frozenset[str]:
    """The log types of ``classes``, for a projector's ``message_types``."""
    return frozenset(cls.TYPE for cls in classes)


def reservation_id_of(message: Message) -> uuid.UUID:
    """The reservation a Dining message is about (every one the customer center handles names
    it; the messages share no base class that says so)."""
    found = getattr(message, "reservation_id", None)
    if not isinstance(found, uuid.UUID):
        raise TypeError(f"{type(message).__name__} names no reservation")
    return found
