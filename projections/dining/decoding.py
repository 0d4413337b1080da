"""Turning log envelopes back into the Dining contract's typed messages."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from domain.dining import messages as dining
from domain.messages import Message
from outbox.envelope import Envelope

# Every message class the contract module defines, by its TYPE.
MESSAGE_CLASSES: dict[str, type[Message]] = {
    obj.TYPE: obj
    for obj in vars(dining).values()
    if isinstance(obj, type) and issubclass(obj, Message) and obj.__module__ == dining.__name__
}


#: Messages decoded lately, by the identity of the payload they came from. A round hands the
#: same envelopes to every projection (the timeline, the customer's reservations, the
#: entries), and a decode costs far more than a lookup. Each entry keeps its payload alive, so
#: an identity found here is that payload and not a newer object at a reused address; a
#: payload is never changed once read. Emptied when full: a round holds at most a few hundred.
_DECODED: dict[int, tuple[Mapping[str, Any], Message]] = {}
_DECODED_MAX = 4096


def decode(envelope: Envelope) -> Message:
    """The typed message an envelope carries; a type outside the contract is a bug (KeyError)."""
    payload = envelope.payload
    kept = _DECODED.get(id(payload))
    if kept is not None and kept[0] is payload and envelope.type == kept[1].TYPE:
        return kept[1]
    message = MESSAGE_CLASSES[envelope.type].from_payload(payload)
    if len(_DECODED) >= _DECODED_MAX:
        _DECODED.clear()
    _DECODED[id(payload)] = (payload, message)
    return message


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
