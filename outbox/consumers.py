"""Transactional consumers: a subscriber's effects, the messages it emits and the deletion of
its pgmq message commit in one transaction.

Redelivery is normal (a worker killed mid-handler, a visibility timeout running out). Because
the delete is inside the handler's transaction, a delivery that did not commit left nothing
behind, and a delivery whose delete finds the message already gone (another delivery won)
rolls back. Effects inside PostgreSQL therefore happen exactly once; calls to the outside world
use ``HandlerContext.idempotency_key``, which is the same for every delivery of a message.

A subscriber with ``batch_size`` > 1 runs the messages one read hands out together in one
transaction (``deliver_batch``): one commit, one delete and one wake-up for all of them. If any
of them fails, the whole transaction rolls back and the broker delivers each message alone
afterwards, so a failing message is retried and parked by itself and never takes others'
effects with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import dramatiq
import psycopg
from dramatiq.middleware import CurrentMessage
from psycopg_pool import ConnectionPool

from outbox import wire
from outbox.broker_message import PgmqBatchProxy
from outbox.envelope import Envelope, MessageContext, NewMessage
from outbox.log import append, append_each
from outbox.logcontext import bound, bound_message
from outbox.relay import Route
from sql import query, queue_query

log = logging.getLogger(__name__)


class TransactionalBroker(Protocol):
    """What the consumer runtime needs from the broker (``outbox.broker.PgmqBroker``)."""

    def ack_in_transaction(self, conn: psycopg.Connection[Any], message: Any) -> bool: ...

    def ack_many_in_transaction(
        self, conn: psycopg.Connection[Any], queue_name: str, msg_ids: list[int]
    ) -> set[int]: ...

    def send_in_transaction(
        self,
        conn: psycopg.Connection[Any],
        message: dramatiq.Message[Any],
        *,
        delay_ms: int | None = None,
        group: str | None = None,
    ) -> int: ...


@runtime_checkable
class BatchingBroker(Protocol):
    """A broker that hands a queue's messages to a batch actor (``outbox.broker.PgmqBroker``)."""

    def declare_batching(self, queue_name: str, actor_name: str, max_size: int) -> None: ...


class BatchScope:
    """What the handlers of one batch share within its transaction: its messages (those that
    run), the messages they emit (appended together at the end) and what a subscriber keeps
    for the batch (``state``, keyed by the subscriber's own object), written back by the
    callbacks it registers with ``before_commit``."""

    def __init__(self, envelopes: list[Envelope], idempotency_keys: list[str]) -> None:
        if len(idempotency_keys) != len(envelopes):
            raise ValueError("a batch needs one idempotency key per envelope")
        self.envelopes = envelopes
        #: Each envelope's ``HandlerContext.idempotency_key``, in the same order (for work a
        #: subscriber does for the whole batch before its handlers run).
        self.idempotency_keys = idempotency_keys
        self.outbox: list[tuple[NewMessage, MessageContext]] = []
        self.state: dict[object, Any] = {}
        self._before_commit: list[Callable[[psycopg.Connection[Any]], None]] = []

    def before_commit(self, callback: Callable[[psycopg.Connection[Any]], None]) -> None:
        self._before_commit.append(callback)

    def finish(self, conn: psycopg.Connection[Any]) -> None:
        """After the last handler: the callbacks in order, then one append of the outbox."""
        for callback in self._before_commit:
            callback(conn)
        append_each(conn, self.outbox)


class HandlerContext:
    """The unit of work a handler runs in: one open transaction and the message being handled."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        envelope: Envelope,
        broker: TransactionalBroker,
        message: Any,
        batch: BatchScope | None = None,
    ) -> None:
        """``batch``: the batch this message runs in, if any; ``emit`` then collects into its
        outbox for one append at the end of the transaction, else it appends at once."""
        self.conn = conn
        self.envelope = envelope
        self._broker = broker
        self._message = message
        self.batch = batch
        #: How many messages this handler emitted.
        self.emitted = 0

    @property
    def message_id(self) -> int:
        """The pgmq msg_id of the message being handled."""
        return int(self._message.options[wire.MSG_ID_OPTION])

    @property
    def idempotency_key(self) -> str:
        """Stable across redeliveries of this message to this subscriber."""
        return str(self._message.message_id)

    def emit(self, *messages: NewMessage) -> None:
        """Append events/commands caused by the message being handled; they commit with its
        transaction. In a batch they are appended together after the last handler, in the
        order emitted (so a handler does not see them in the log before that)."""
        context = MessageContext.caused_by_envelope(self.envelope)
        if self.batch is not None:
            self.batch.outbox.extend((m, context) for m in messages)
        else:
            append(self.conn, messages, context)
        self.emitted += len(messages)

    def cancel_scheduled(self, msg_id: int) -> None:
        """Delete a message of this subscriber's queue (a saga's deadline message) with this
        transaction; nothing happens if it is gone already. The message being handled is left
        to the ack."""
        if msg_id == self.message_id:
            return
        self.conn.execute(queue_query("delete", self._message.queue_name), {"msg_id": msg_id})


Handler = Callable[[HandlerContext, Envelope], None]


@dataclass(frozen=True)
class Subscriber:
    """A policy, saga step or integration that reacts to message types from the log."""

    name: str
    handles: frozenset[str]
    handler: Handler
    queue_name: str | None = None
    ordered: bool = True
    actor_options: dict[str, Any] = field(default_factory=dict)
    #: Set on a saga's subscriber: the worker then fires that saga type's deadlines into it.
    saga_type: str | None = None
    #: Up to this many messages read together run in one transaction (1: each alone). The
    #: subscriber must have its queue to itself. Keep it 1 for handlers that call the outside
    #: world: a batch's calls add up against one time limit.
    batch_size: int = 1
    #: The order a batch runs in (stable, default: as read). Handlers that lock rows should
    #: give the key they lock by, so concurrent batches take their locks in one order.
    batch_key: Callable[[Envelope], str] | None = None
    #: Called once per batch, before its first handler (a saga loads its instances here).
    prepare_batch: Callable[[psycopg.Connection[Any], BatchScope], None] | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size of {self.name} must be at least 1")

    @property
    def route(self) -> Route:
        return Route(self.name, self.queue_name or self.name, self.handles, self.ordered)

    @property
    def batch_actor_name(self) -> str:
        return f"{self.name}.batch"


class _Superseded(Exception):
    """Another delivery of this message already committed; undo this one."""


def notify_relay_now(conn: psycopg.Connection[Any]) -> None:
    """Wake the relay with a NOTIFY of its own on ``conn`` (outside any other transaction)."""
    with conn.transaction():
        conn.execute(query("outbox.notify_relay"))


def deliver(
    pool: ConnectionPool[Any],
    broker: TransactionalBroker,
    subscriber: Subscriber,
    envelope: Envelope,
    message: Any,
    wake_relay: Callable[[], None] | None = None,
) -> bool:
    """Run ``subscriber`` for one delivery. Returns False when the delivery was superseded.

    After a commit that appended to the log, ``wake_relay()`` is called (a process's
    ``outbox.wakeup.RelayWakeup.poke``); without one, a NOTIFY is sent on this connection.
    """
    # The message's ids are bound for its whole processing by outbox.logcontext.
    with bound(subscriber=subscriber.name):
        with pool.connection() as conn:
            try:
                with conn.transaction():
                    ctx = HandlerContext(conn, envelope, broker, message)
                    subscriber.handler(ctx, envelope)
                    if not broker.ack_in_transaction(conn, message):
                        raise _Superseded
            except _Superseded:
                log.info("delivery superseded by another one that committed first; rolled back")
                return False
            if ctx.emitted and wake_relay is None:
                # After the commit, not inside it: NOTIFY in a committing transaction takes a
                # cluster-wide lock that serialises commits. The relay also polls, so a lost
                # wake-up only costs latency.
                notify_relay_now(conn)
        if ctx.emitted and wake_relay is not None:
            wake_relay()
        return True


def deliver_batch(
    pool: ConnectionPool[Any],
    broker: TransactionalBroker,
    subscriber: Subscriber,
    batch: PgmqBatchProxy,
    wake_relay: Callable[[], None] | None = None,
) -> int:
    """Run ``subscriber`` for every message of ``batch`` in one transaction, which deletes
    them first: a message another delivery already finished is skipped. Sets ``batch.done``
    once committed and returns how many messages ran. Raises what a handler raised, after the
    rollback; the caller leaves the messages to be delivered alone (``outbox.broker_consumer``).
    """
    runs = [(part, Envelope.from_json(part.args[0])) for part in batch.parts]
    if subscriber.batch_key is not None:
        key = subscriber.batch_key
        runs.sort(key=lambda run: key(run[1]))
    with bound(subscriber=subscriber.name):
        with pool.connection() as conn:
            with conn.transaction():
                live = broker.ack_many_in_transaction(conn, batch.queue_name, batch.msg_ids)
                for part, _ in runs:
                    if part.msg_id not in live:
                        with bound_message(part):
                            log.info("delivery superseded by another one that committed first")
                runs = [(part, envelope) for part, envelope in runs if part.msg_id in live]
                scope = BatchScope(
                    [envelope for _, envelope in runs], [str(part.message_id) for part, _ in runs]
                )
                if subscriber.prepare_batch is not None:
                    subscriber.prepare_batch(conn, scope)
                for part, envelope in runs:
                    with bound_message(part):
                        subscriber.handler(
                            HandlerContext(conn, envelope, broker, part, scope), envelope
                        )
                scope.finish(conn)
            batch.done = True  # committed: whatever happens next, the messages are gone
            emitted = bool(scope.outbox)
            if emitted and wake_relay is None:
                notify_relay_now(conn)
        if emitted and wake_relay is not None:
            wake_relay()
    return len(live)


def declare_subscribers(
    broker: dramatiq.Broker,
    pool_provider: Callable[[], ConnectionPool[Any]],
    subscribers: Iterable[Subscriber],
    wake_relay: Callable[[], None] | None = None,
) -> list[dramatiq.Actor[Any, Any]]:
    """Create one Dramatiq actor per subscriber; the pool is looked up per call (after fork).
    ``wake_relay`` is called after each commit that appended to the log (see ``deliver``)."""
    actors = []
    for sub in subscribers:

        def run(envelope_json: dict[str, Any], _sub: Subscriber = sub) -> None:
            message = CurrentMessage.get_current_message()
            if message is None:
                raise RuntimeError("CurrentMessage middleware is required by transactional actors")
            envelope = Envelope.from_json(envelope_json)
            deliver(pool_provider(), broker, _sub, envelope, message, wake_relay)  # type: ignore[arg-type]

        run.__name__ = sub.name
        decorate = dramatiq.actor(
            actor_name=sub.name, queue_name=sub.route.queue_name, broker=broker, **sub.actor_options
        )
        actors.append(decorate(run))
        if sub.batch_size > 1:
            actors.append(_declare_batch_actor(broker, pool_provider, sub, wake_relay))
    return actors


def _declare_batch_actor(
    broker: dramatiq.Broker,
    pool_provider: Callable[[], ConnectionPool[Any]],
    sub: Subscriber,
    wake_relay: Callable[[], None] | None,
) -> dramatiq.Actor[Any, Any]:
    if not isinstance(broker, BatchingBroker):
        raise TypeError(f"batch_size of {sub.name} needs a broker that batches (PgmqBroker)")

    def run_batch() -> None:
        batch = CurrentMessage.get_current_message()
        if not isinstance(batch, PgmqBatchProxy):
            raise RuntimeError(f"{sub.batch_actor_name} runs batches delivered by PgmqBroker")
        try:
            deliver_batch(pool_provider(), broker, sub, batch, wake_relay)
        except Exception as exc:
            # Not raised on: the batch is not retried as a whole (see deliver_batch).
            log.warning(
                "a batch of %d messages for %s rolled back (%s: %s); each runs alone next",
                len(batch.parts), sub.name, type(exc).__name__, exc,
            )  # fmt: skip

    run_batch.__name__ = sub.batch_actor_name
    options = {k: v for k, v in sub.actor_options.items() if k == "time_limit"}
    actor = dramatiq.actor(
        actor_name=sub.batch_actor_name, queue_name=sub.route.queue_name, broker=broker, **options
    )(run_batch)
    broker.declare_batching(sub.route.queue_name, sub.batch_actor_name, sub.batch_size)
    return actor


def routes(subscribers: Sequence[Subscriber]) -> list[Route]:
    names = [s.name for s in subscribers]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"subscriber names must be unique: {sorted(duplicates)}")
    return [s.route for s in subscribers]
