"""Putting envelopes on a subscriber's queue as the relay would, for tests that drive the
broker and the consumers without a relay."""

from __future__ import annotations

import dramatiq

from outbox.broker import PgmqBroker
from outbox.consumers import Subscriber
from outbox.envelope import Envelope


def enqueue(broker: PgmqBroker, sub: Subscriber, envelopes: list[Envelope]) -> None:
    """One Dramatiq message per envelope on ``sub``'s queue, its stream as the FIFO group."""
    broker.enqueue_batch([
        dramatiq.Message(
            queue_name=sub.route.queue_name, actor_name=sub.name, args=(env.to_json(),),
            kwargs={}, options={"group": env.stream},
        )
        for env in envelopes
    ])  # fmt: skip
