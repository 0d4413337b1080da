"""A batch's scope pairs each envelope with its message's idempotency key."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from outbox.consumers import BatchScope
from outbox.envelope import Envelope


def _envelope() -> Envelope:
    return Envelope(
        position=1, global_position=1, event_id=uuid.uuid4(), kind="event", type="shop.Item",
        stream="item-1", version=1, payload={}, correlation_id=uuid.uuid4(), causation_id=None,
        actor=None, occurred_at=datetime.now(UTC),
    )  # fmt: skip


def test_a_scope_without_a_key_per_envelope_is_refused() -> None:
    with pytest.raises(ValueError, match="one idempotency key per envelope"):
        BatchScope([_envelope(), _envelope()], ["only-one"])


def test_keys_stay_in_the_envelopes_order() -> None:
    envelopes = [_envelope(), _envelope()]
    scope = BatchScope(envelopes, ["a", "b"])
    assert list(zip(scope.envelopes, scope.idempotency_keys, strict=True)) == [
        (envelopes[0], "a"),
        (envelopes[1], "b"),
    ]
