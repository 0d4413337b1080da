"""Decoding log envelopes into the Dining contract's messages, each payload once."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from typing import Any

from domain.dining import messages as m
from domain.messages import Message
from outbox.envelope import Envelope
from projections.dining.decoding import decode


def _envelope(message: Message, payload: dict[str, Any] | None = None) -> Envelope:
    return Envelope(
        position=1, global_position=1, event_id=uuid.uuid4(), kind=message.KIND,
        type=message.TYPE, stream=message.stream(), version=1,
        payload=message.payload() if payload is None else payload,
        correlation_id=uuid.uuid4(), causation_id=None, actor=None,
        occurred_at=dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
    )  # fmt: skip


def test_an_envelope_decoded_again_gives_the_message_it_gave_before() -> None:
    rid = uuid.uuid4()
    envelope = _envelope(m.ReservationConfirmed(rid))

    first = decode(envelope)

    assert first == m.ReservationConfirmed(rid)
    assert decode(envelope) is first


def test_an_equal_payload_of_another_read_is_decoded_afresh() -> None:
    message = m.ReservationConfirmed(uuid.uuid4())
    one, other = _envelope(message), _envelope(message)

    assert decode(one) == decode(other)
    assert decode(one) is not decode(other)


def test_the_same_payload_under_another_type_decodes_as_that_type() -> None:
    rid = uuid.uuid4()
    confirmed = _envelope(m.ReservationConfirmed(rid))
    paid = replace(confirmed, type=m.ReservationDepositPaid.TYPE)

    assert isinstance(decode(confirmed), m.ReservationConfirmed)
    assert decode(paid) == m.ReservationDepositPaid(rid)
