"""Dramatiq messages in and out of pgmq rows (``outbox.wire`` format).

Decoding depends on the row alone: the relay writes these rows with ``pgmq.send_batch`` and
never goes through the broker.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

import dramatiq
import psycopg
from dramatiq.broker import MessageProxy
from psycopg.types.json import Jsonb

from outbox import wire
from outbox.parking import StoredMessage
from sql import query, queue_query

#: Options the broker adds to delivered messages; never written back into a queue.
DELIVERY_OPTIONS = frozenset({wire.MSG_ID_OPTION, wire.READ_COUNT_OPTION})


class PgmqMessageProxy(MessageProxy):
    """A delivered message plus what pgmq said about it, and the outcome the worker decided."""

    def __init__(self, message: dramatiq.Message[Any], stored: StoredMessage) -> None:
        super().__init__(message)
        self.stored = stored
        self.msg_id = stored.msg_id
        #: When the visibility timeout last started (the read, or a lease renewal).
        self.leased_at = monotonic()
        #: Set by PgmqRetries: keep the message and make it visible again after this delay.
        self.retry_in_ms: int | None = None
        # False when the failure was the infrastructure's (see outbox.errors.is_transient).
        self.attempt_counts = True
        #: Set by PgmqRetries when attempts are used up: the error text to park it with.
        self.park_reason: str | None = None

    @property
    def exception(self) -> BaseException | None:
        return self._exception

    @property
    def msg_ids(self) -> list[int]:
        """The pgmq msg_ids this delivery settles."""
        return [self.msg_id]


class PgmqBatchProxy(PgmqMessageProxy):
    """Several messages of one queue, read together, for a subscriber's batch actor to run in
    one transaction (``outbox.consumers.deliver_batch``).

    ``message`` is a carrier for the batch actor, never stored in a queue; each of ``parts``
    is the delivery of one stored message. The batch actor sets ``done`` once the batch has
    committed (the messages are deleted with it). A batch that ends otherwise is never
    retried or parked as a whole: the consumer makes its messages visible again, and a
    message read a second time is delivered alone, with the usual retries and parking.
    """

    def __init__(self, message: dramatiq.Message[Any], parts: list[PgmqMessageProxy]) -> None:
        if not parts:
            raise ValueError("a batch needs at least one message")
        super().__init__(message, parts[0].stored)
        self.parts = parts
        self.done = False

    @property
    def msg_ids(self) -> list[int]:
        return [part.msg_id for part in self.parts]


def decode(queue_name: str, body: Any) -> dramatiq.Message[Any]:
    """The Dramatiq message in a pgmq ``message`` column.

    The queue it was read from wins over the body's ``queue_name``: the worker hands the
    message back to the consumer of that queue.
    """
    if not isinstance(body, dict):
        raise ValueError(f"message body must be a JSON object, got {type(body).__name__}")
    return dramatiq.Message(
        queue_name=queue_name,
        actor_name=str(body["actor_name"]),
        args=tuple(body.get("args") or ()),
        kwargs=dict(body.get("kwargs") or {}),
        options=dict(body.get("options") or {}),
        message_id=str(body["message_id"]),
        message_timestamp=int(body["message_timestamp"]),
    )


def send_params(
    message: dramatiq.Message[Any], delay_ms: int | None, group: str | None
) -> dict[str, Any]:
    """Parameters of ``broker.send``: the body is ``Message.asdict()``, the FIFO group (the
    argument, else ``options["group"]``) goes into the headers."""
    body = message.asdict()
    body["args"] = list(message.args)
    body["options"] = {k: v for k, v in message.options.items() if k not in DELIVERY_OPTIONS}
    group = group if group is not None else message.options.get("group")
    headers = wire.headers(None if group is None else str(group))
    return {
        "queue": message.queue_name,
        "message": Jsonb(body),
        "headers": Jsonb(headers) if headers else None,
        "delay_ms": delay_ms or 0,
    }


def send(conn: psycopg.Connection[Any], params: dict[str, Any], *, notify: bool) -> int:
    """Insert into the queue's table as ``pgmq.send`` does (and NOTIFY the wake-up) in one
    round trip; the new msg_id."""
    with conn.pipeline():
        cursor = conn.execute(queue_query("send", params["queue"]), params)
        if notify:
            conn.execute(query("broker.notify"), {"channel": wire.notify_channel(params["queue"])})
    row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def send_batch(
    conn: psycopg.Connection[Any],
    queue: str,
    sends: list[dict[str, Any]],
    *,
    delay_ms: int | None,
    notify: bool,
) -> list[int]:
    """``pgmq.send_batch`` of ``send_params`` results for one queue, as one insert into its
    table; msg_ids in order."""
    headers = [None if p["headers"] is None else p["headers"].obj for p in sends]
    params = {
        "messages": Jsonb([p["message"].obj for p in sends]),
        "headers": None if all(h is None for h in headers) else Jsonb(headers),
        "delay_ms": delay_ms or 0,
    }
    with conn.pipeline():
        cursor = conn.execute(queue_query("send_json_array", queue), params)
        if notify:
            conn.execute(query("broker.notify"), {"channel": wire.notify_channel(queue)})
    return [int(r[0]) for r in cursor.fetchall()]
