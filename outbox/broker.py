"""A Dramatiq broker on pgmq: the queues live in the same PostgreSQL as everything else.

Messages are stored as ``outbox.wire`` says, so the relay can ``pgmq.send_batch`` into the same
queues. Delays are pgmq's (the message row is invisible until due); Dramatiq's ``eta`` and delay
queues are never used because they keep messages in worker memory. Retries and dead letters
are native too (``outbox.retries``, ``outbox.parking``). Besides Dramatiq's broker interface,
``send_in_transaction`` and ``ack_in_transaction`` run on the caller's connection, so a
handler's effects, the messages it sends and the delete of its own message commit together.

Nothing connects at import or construction: each process opens its own pool on first use (a
pool inherited through ``fork`` is left alone, never closed, since its sockets are the
parent's).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from time import monotonic, sleep
from typing import Any, TypeVar

import dramatiq
import psycopg
from dramatiq.errors import QueueJoinTimeout, QueueNotFound
from dramatiq.middleware import Middleware, Retries, TimeLimit
from psycopg_pool import ConnectionPool

from outbox import wire
from outbox.broker_consumer import PgmqConsumer
from outbox.broker_listener import Doorbell, QueueListener
from outbox.broker_message import send, send_batch, send_params
from outbox.broker_middleware import pgmq_middleware
from outbox.broker_process import (
    INHERITED,
    AckBuffer,
    Connector,
    ProcessResources,
    track_for_fork,
)
from sql import query, queue_query

log = logging.getLogger(__name__)
T = TypeVar("T")

SEND_BATCH_CHUNK = 5000
#: Acks wait at most this long for a read to ride along with before they are deleted alone.
ACK_LINGER_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class Batching:
    """A queue whose messages read together go to one batch actor (``declare_batching``)."""

    actor_name: str
    max_size: int


def _deleter(queue: str, msg_ids: list[int]) -> Callable[[psycopg.Connection[Any]], object]:
    statement, params = queue_query("delete_many", queue), {"msg_ids": msg_ids}
    return lambda conn: conn.execute(statement, params)


class PgmqBroker(dramatiq.Broker):
    """Dramatiq broker on pgmq. Give ``conninfo`` or ``pool_factory`` (called once per process).

    Queues are unordered unless named in ``ordered_queues`` or declared with
    ``declare_queue(name, ordered=True)``; an ordered queue hands out at most one message per
    FIFO group (``options["group"]`` of a message) at a time, across all processes.

    Consumers wake on NOTIFY (sent with each undelayed message, and when a delete lets out the
    next message of a FIFO group) and otherwise sleep until the next delayed, backing-off or
    in-flight message becomes visible, which every read reports: at least ``poll_min_ms``, at
    most ``poll_max_ms`` (what a lost notification, or a message sent without one, can wait).
    """

    def __init__(
        self,
        conninfo: str | None = None,
        *,
        pool_factory: Callable[[], ConnectionPool[Any]] | None = None,
        middleware: list[Middleware] | None = None,
        ordered_queues: Iterable[str] = (),
        visibility_timeout_seconds: int = 60,
        actor_time_limit_seconds: int = 30,
        max_retries: int = 5,
        min_backoff_ms: int = 200,
        max_backoff_ms: int = 30_000,
        pool_min_size: int = 1,
        pool_max_size: int = 8,
        pool_timeout_seconds: float = 10.0,
        poll_min_ms: int = 10,
        poll_max_ms: int = 1000,
        notify_on_enqueue: bool = True,
    ) -> None:
        if (conninfo is None) == (pool_factory is None):
            raise ValueError("give exactly one of conninfo and pool_factory")
        if visibility_timeout_seconds <= actor_time_limit_seconds:
            raise ValueError(
                f"visibility_timeout_seconds ({visibility_timeout_seconds}) must exceed "
                f"actor_time_limit_seconds ({actor_time_limit_seconds}), or a slow actor's "
                "message becomes visible again and runs twice"
            )
        self.visibility_timeout_seconds = visibility_timeout_seconds
        self.actor_time_limit_ms = actor_time_limit_seconds * 1000
        self.poll_min_seconds = poll_min_ms / 1000
        self.poll_max_seconds = poll_max_ms / 1000
        self.notify_on_enqueue = notify_on_enqueue
        self._connector = Connector(
            conninfo, pool_factory, pool_min_size, pool_max_size, pool_timeout_seconds
        )
        self._lock = threading.Lock()
        self._resources: ProcessResources | None = None
        self._created: set[str] = set()
        self._settled: set[tuple[str, int]] = set()
        self._leading: set[tuple[str, int]] = set()
        self._ordered = {wire.check_queue_name(q) for q in ordered_queues}
        self._batching: dict[str, Batching] = {}
        if middleware is None:
            middleware = pgmq_middleware(
                time_limit_ms=self.actor_time_limit_ms, max_retries=max_retries,
                min_backoff_ms=min_backoff_ms, max_backoff_ms=max_backoff_ms,
            )  # fmt: skip
        super().__init__(middleware=middleware)
        self.queues: dict[str, None] = {}
        track_for_fork(self)

    # -- Dramatiq's broker interface ------------------------------------------------------

    def add_middleware(
        self,
        middleware: Middleware,
        *,
        before: type[Middleware] | None = None,
        after: type[Middleware] | None = None,
    ) -> None:
        """As Dramatiq's, but refuses what would break the visibility-timeout contract."""
        if isinstance(middleware, Retries):
            raise ValueError(
                "Dramatiq's Retries re-enqueues with an eta held in worker memory; "
                "PgmqBroker retries natively with outbox.retries.PgmqRetries"
            )
        if isinstance(middleware, TimeLimit):
            self._check_time_limit(middleware.time_limit, "the TimeLimit middleware")
        super().add_middleware(middleware, before=before, after=after)

    def declare_actor(self, actor: dramatiq.Actor[Any, Any]) -> None:
        limit = actor.options.get("time_limit")
        if limit is not None:
            self._check_time_limit(limit, f"actor {actor.actor_name}")
        super().declare_actor(actor)

    def declare_queue(self, queue_name: str, *, ordered: bool | None = None) -> None:
        """Declare a queue (idempotent); the pgmq queue is created on first use, not here."""
        wire.check_queue_name(queue_name)
        if ordered is True:
            self._ordered.add(queue_name)
        elif ordered is False:
            self._ordered.discard(queue_name)
        if queue_name not in self.queues:
            self.emit_before("declare_queue", queue_name)
            self.queues[queue_name] = None
            self.emit_after("declare_queue", queue_name)

    def is_ordered(self, queue_name: str) -> bool:
        """Whether the queue hands out one message per FIFO group at a time."""
        return queue_name in self._ordered

    def declare_batching(self, queue_name: str, actor_name: str, max_size: int) -> None:
        """Hand messages of ``queue_name`` read together (up to ``max_size``) to the actor
        ``actor_name`` as one ``PgmqBatchProxy``. Declare the actor first; every message of
        the queue must belong to the one subscriber that actor runs."""
        if max_size < 2:
            raise ValueError("a batch holds at least two messages")
        self.get_actor(actor_name)  # raises ActorNotFound for a typo
        self._batching[wire.check_queue_name(queue_name)] = Batching(actor_name, max_size)

    def batching(self, queue_name: str) -> Batching | None:
        """How the queue's messages are batched, or None when they are delivered one by one."""
        return self._batching.get(queue_name)

    def enqueue(
        self,
        message: dramatiq.Message[Any],
        *,
        delay: int | None = None,
        group: str | None = None,
    ) -> dramatiq.Message[Any]:
        """Send a message, visible after ``delay`` ms; its FIFO group is ``group`` or
        ``message.options["group"]``. Returns a copy carrying the pgmq msg_id."""
        queue = message.queue_name
        if queue not in self.queues:
            raise QueueNotFound(queue)  # type: ignore[no-untyped-call]
        self.ensure_queue(queue)
        self.emit_before("enqueue", message, delay)
        params = send_params(message, delay, group)
        notify = self.notify_on_enqueue and not delay
        msg_id = self.run(lambda conn: send(conn, params, notify=notify))
        self.emit_after("enqueue", message, delay)
        self._ring(queue)
        return message.copy(options={wire.MSG_ID_OPTION: msg_id})

    def enqueue_batch(
        self, messages: Iterable[dramatiq.Message[Any]], *, delay: int | None = None
    ) -> list[int]:
        """Send many messages with ``pgmq.send_batch``, one round trip per queue and chunk.

        Middleware ``enqueue`` hooks run per message, as for ``enqueue``. Returns the msg_ids
        in the order of ``messages``.
        """
        batch = list(messages)
        by_queue: dict[str, list[int]] = {}
        for i, message in enumerate(batch):
            if message.queue_name not in self.queues:
                raise QueueNotFound(message.queue_name)  # type: ignore[no-untyped-call]
            by_queue.setdefault(message.queue_name, []).append(i)
        for message in batch:
            self.emit_before("enqueue", message, delay)
        ids: list[int] = [0] * len(batch)
        for queue, positions in by_queue.items():
            self.ensure_queue(queue)
            for start in range(0, len(positions), SEND_BATCH_CHUNK):
                chunk = positions[start : start + SEND_BATCH_CHUNK]
                sent = self._send_batch(
                    queue, [send_params(batch[i], delay, None) for i in chunk], delay
                )
                for i, msg_id in zip(chunk, sent, strict=True):
                    ids[i] = msg_id
            self._ring(queue)
        for message in batch:
            self.emit_after("enqueue", message, delay)
        return ids

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 30000) -> PgmqConsumer:
        """A consumer of ``queue_name``; ``timeout`` ms is how long an idle ``next()`` waits.

        A batched queue holds at least two full batches (Dramatiq asks for twice the worker
        threads, for every queue alike): a read then fills a batch whenever the backlog can.
        """
        if queue_name not in self.queues:
            raise QueueNotFound(queue_name)  # type: ignore[no-untyped-call]
        self.ensure_queue(queue_name)
        batching = self._batching.get(queue_name)
        if batching is not None:
            prefetch = max(prefetch, 2 * batching.max_size)
        return PgmqConsumer(self, queue_name, prefetch, timeout)

    def flush(self, queue_name: str) -> None:
        """Drop every message of a queue (tests)."""
        self.ensure_queue(queue_name)
        self.run(lambda conn: conn.execute(query("broker.purge"), {"queue": queue_name}))

    def flush_all(self) -> None:
        """Drop every message of every declared queue (tests)."""
        for queue_name in self.queues:
            self.flush(queue_name)

    def join(self, queue_name: str, *, timeout: int | None = None, interval: int = 20) -> None:
        """Wait until the queue holds no message: none waiting, delayed, backing off or in
        flight (acks are deletes). Test helper; ``QueueJoinTimeout`` after ``timeout`` ms."""
        if queue_name not in self.queues:
            raise QueueNotFound(queue_name)  # type: ignore[no-untyped-call]
        self.ensure_queue(queue_name)
        deadline = None if timeout is None else monotonic() + timeout / 1000
        while self.queue_length(queue_name) > 0:
            if deadline is not None and monotonic() >= deadline:
                raise QueueJoinTimeout(queue_name)  # type: ignore[no-untyped-call]
            sleep(interval / 1000)

    def close(self) -> None:
        """Delete acked messages still buffered, stop the listener and close this process's
        pool."""
        with self._lock:
            res, self._resources = self._resources, None
        if res is None or res.pid != os.getpid():
            return
        res.listener.close()
        for queue, ids in res.pending_acks().items():
            try:
                res.run(_deleter(queue, ids))
            except dramatiq.errors.BrokerConnectionError:
                log.warning("could not delete %d acked messages of %s on close", len(ids), queue)
        res.pool.close()

    # -- Transactional operations on the caller's connection ----------------------------

    def send_in_transaction(
        self,
        conn: psycopg.Connection[Any],
        message: dramatiq.Message[Any],
        *,
        delay_ms: int | None = None,
        group: str | None = None,
    ) -> int:
        """Send ``message`` inside the caller's transaction: it exists only if that commits.

        Undelayed sends also NOTIFY in that transaction (a wake-up for idle consumers; the
        notification queue lock is taken at commit). Returns the pgmq msg_id.
        """
        self.ensure_queue(wire.check_queue_name(message.queue_name))
        params = send_params(message, delay_ms, group)
        return send(conn, params, notify=not delay_ms)

    def ack_in_transaction(self, conn: psycopg.Connection[Any], message: Any) -> bool:
        """Delete the delivered ``message`` inside the caller's transaction.

        False means the message was already gone (another delivery finished it): the caller
        must roll back. Either way the worker's later ack makes no second round trip.
        """
        queue, msg_id = message.queue_name, int(message.options[wire.MSG_ID_OPTION])
        if self.is_ordered(queue):
            deleted = msg_id in self._delete_telling_followers(conn, queue, [msg_id])
        else:
            row = conn.execute(queue_query("delete", queue), {"msg_id": msg_id}).fetchone()
            deleted = row is not None
        with self._lock:
            self._settled.add((queue, msg_id))
        return deleted

    def ack_many_in_transaction(
        self, conn: psycopg.Connection[Any], queue_name: str, msg_ids: list[int]
    ) -> set[int]:
        """Delete delivered messages inside the caller's transaction; returns those that were
        still there (the others were finished by another delivery and must not run again).
        The rows stay locked until the transaction ends, so a concurrent delivery of one of
        them waits for this one's outcome."""
        if self.is_ordered(queue_name):
            return self._delete_telling_followers(conn, queue_name, msg_ids)
        rows = conn.execute(queue_query("delete_many", queue_name), {"msg_ids": msg_ids})
        return {int(r[0]) for r in rows.fetchall()}

    def _delete_telling_followers(
        self, conn: psycopg.Connection[Any], queue: str, msg_ids: list[int]
    ) -> set[int]:
        """Delete from an ordered queue, noting the messages whose delete lets a later one of
        their FIFO group out (``lets_out``); the statement then NOTIFYs the queue's consumers
        at commit, in every process."""
        params = {"msg_ids": msg_ids, "channel": wire.notify_channel(queue)}
        rows = conn.execute(queue_query("delete_telling_followers", queue), params).fetchall()
        leading = [(queue, int(r[0])) for r in rows if r[1]]
        if leading:
            with self._lock:
                self._leading.update(leading)
        return {int(r[0]) for r in rows}

    def lets_out(self, queue_name: str, msg_ids: Iterable[int]) -> bool:
        """True (once) if deleting one of these messages in a handler's transaction let a
        later message of its FIFO group out: the consumer should read again at once."""
        keys = {(queue_name, msg_id) for msg_id in msg_ids}
        with self._lock:
            found = not keys.isdisjoint(self._leading)
            if found:
                self._leading.difference_update(keys)
        return found

    # -- Used by the consumer, the retries and tests --------------------------------------

    def run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``work`` on one of this process's pool connections; connection trouble that a
        retry on a fresh connection does not cure raises ``ConnectionClosed``."""
        return self._process().run(work)

    def ensure_queue(self, queue_name: str) -> None:
        """Create the pgmq queue once per broker (``pgmq.create`` is idempotent)."""
        if queue_name in self._created:
            return
        self.run(lambda conn: conn.execute(query("broker.create_queue"), {"queue": queue_name}))
        if self.is_ordered(queue_name):
            params = {"queue": queue_name}
            self.run(lambda conn: conn.execute(query("broker.create_group_index"), params))
        self._created.add(queue_name)

    def queue_length(self, queue_name: str) -> int:
        row = self.run(
            lambda conn: conn.execute(
                query("broker.queue_length"), {"queue": queue_name}
            ).fetchone()
        )
        return int(row[0]) if row else 0

    def doorbell(self, queue_name: str) -> Doorbell:
        """This process's doorbell for a queue; the LISTEN connection subscribes to it."""
        return self._process().doorbell(queue_name)

    def ack_buffer(self, queue_name: str) -> AckBuffer:
        """This process's acks of a queue that wait to be deleted (shared by its consumers,
        so a consumer restarted after a connection error still deletes them)."""
        return self._process().ack_buffer(queue_name)

    @property
    def listener(self) -> QueueListener:
        """This process's LISTEN connection owner."""
        return self._process().listener

    def forget_settled(self, queue_name: str, msg_id: int) -> bool:
        """True (once) if ``ack_in_transaction`` already handled this delivery."""
        with self._lock:
            try:
                self._settled.remove((queue_name, msg_id))
            except KeyError:
                return False
            return True

    # -- Internals ---------------------------------------------------------------------------

    def _check_time_limit(self, limit_ms: float, what: str) -> None:
        if limit_ms >= self.visibility_timeout_seconds * 1000:
            raise ValueError(
                f"the time limit of {what} ({limit_ms} ms) must stay below the "
                f"visibility timeout ({self.visibility_timeout_seconds} s)"
            )

    def _send_batch(self, queue: str, sends: list[dict[str, Any]], delay: int | None) -> list[int]:
        notify = self.notify_on_enqueue and not delay
        return self.run(lambda conn: send_batch(conn, queue, sends, delay_ms=delay, notify=notify))

    def _ring(self, queue_name: str) -> None:
        res = self._resources
        if res is not None and res.pid == os.getpid():
            res.ring(queue_name)

    def _process(self) -> ProcessResources:
        res = self._resources
        if res is not None and res.pid == os.getpid():
            return res
        with self._lock:
            if self._resources is None or self._resources.pid != os.getpid():
                if self._resources is not None:
                    INHERITED.append(self._resources)
                self._resources = ProcessResources(self._connector, ACK_LINGER_SECONDS)
            return self._resources

    def forget_parent_resources(self) -> None:
        """After fork, in the child: start afresh, leaving the parent's resources alone."""
        # Locks may have been held by a thread that does not exist in the child.
        self._lock = threading.Lock()
        if self._resources is not None:
            INHERITED.append(self._resources)
            self._resources = None
