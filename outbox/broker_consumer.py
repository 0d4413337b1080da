"""The consuming half of the pgmq broker: batched reads, batched deletes, parking on read.

Dramatiq calls ``__next__`` from its consumer thread and ``ack``/``nack`` from worker threads.
Acks only queue the msg_id; the consumer thread deletes them in the same round trip as its next
read (pipeline mode), so a busy queue costs one round trip per batch, not one per message.

On a queue with batching declared (``PgmqBroker.declare_batching``), the messages one read
returns are handed to the batch actor together (``PgmqBatchProxy``), to run in one transaction.
A message read for the second time or more is always delivered alone: a batch that failed (or
whose worker died) is thus split, and each of its messages gets the usual retries and parking
on its own.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable
from time import monotonic
from typing import TYPE_CHECKING, Any

import dramatiq
import psycopg
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.errors import ConnectionClosed

from outbox import logcontext, parking, wire
from outbox.broker_message import PgmqBatchProxy, PgmqMessageProxy, decode
from outbox.broker_middleware import attempts_allowed
from outbox.parking import StoredMessage
from sql import query, queue_query

if TYPE_CHECKING:
    from outbox.broker import PgmqBroker

log = logging.getLogger(__name__)

# A delivery that ends without an outcome (worker killed, database gone while prefetched) still
# raised read_ct. Such deliveries get this many extra attempts before the message is taken for
# one that kills its worker every time and is parked: a database outage must not dead-letter
# healthy messages, while a crash-looping one is still stopped.
UNFINISHED_DELIVERY_GRACE = 3


class PgmqConsumer(Consumer):
    """Consumes one pgmq queue for a Dramatiq worker; ``prefetch`` bounds messages held here."""

    def __init__(self, broker: PgmqBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        self._broker = broker
        self.queue_name = queue_name
        self.prefetch = max(1, prefetch)
        self.timeout = timeout
        self._ordered = broker.is_ordered(queue_name)
        self._batching = broker.batching(queue_name)
        self._bell = broker.doorbell(queue_name)
        self._acks = broker.ack_buffer(queue_name)
        #: Reads that found nothing (tests wait on it to know the consumer is idle).
        self.empty_reads = 0
        self._cache: deque[PgmqMessageProxy] = deque()
        self._lock = threading.Lock()
        self._in_flight: set[int] = set()
        # Refill only when half the prefetch is free: reads come in batches, not one by one.
        self._low_water = max(1, self.prefetch // 2)
        self._seen = self._bell.ticket()
        self._dirty = True
        self._next_poll = 0.0

    def __next__(self) -> PgmqMessageProxy | None:
        """The next message, or None after ``timeout`` ms without one (Dramatiq's worker
        needs the None to notice a shutdown). Sleeps until a doorbell ring (a NOTIFY: a new
        message, or one its group's head let out), the moment the next delayed, backing-off
        or in-flight message becomes visible (each read says when; poll_min at the least),
        poll_max at the most (a lost notification costs that much), or due acks, whichever
        comes first. No blind polls: a read only repeats when something may have changed."""
        deadline = monotonic() + self.timeout / 1000
        while True:
            if self._cache:
                return self._cache.popleft()
            ticket = self._bell.ticket()
            if ticket != self._seen:
                self._seen, self._dirty = ticket, True
            now = monotonic()
            with self._lock:
                capacity = self.prefetch - len(self._in_flight)
            can_read = capacity >= self._low_water
            if (can_read and (self._dirty or now >= self._next_poll)) or self._acks.due(
                now, self._low_water
            ):
                self._exchange(capacity if can_read else 0)
                if self._cache:
                    continue
            now = monotonic()
            if now >= deadline:
                return None
            wake_at = min(deadline, self._acks.flush_at())
            if can_read:
                wake_at = min(wake_at, self._next_poll)
            self._bell.wait(self._seen, wake_at - now)

    def _exchange(self, qty: int) -> None:
        """Delete acked messages and read up to ``qty`` new ones, in one round trip."""
        deletes = self._acks.take()
        try:
            rows = self._broker.run(lambda conn: self._round_trip(conn, deletes, qty))
        except BaseException:
            self._acks.put_back(deletes, monotonic())
            raise
        if qty == 0:
            return
        due = rows[0][6] if rows else None  # every row says it, the NULL row too
        rows = [row for row in rows if row[0] is not None]
        self._dirty = len(rows) >= qty  # a full batch: there may be more right away
        broker = self._broker
        wait = broker.poll_max_seconds if due is None else float(due)
        self._next_poll = monotonic() + min(
            max(wait, broker.poll_min_seconds), broker.poll_max_seconds
        )
        if not rows:
            self.empty_reads += 1
            return
        admitted = [p for p in map(self._admit, rows) if p is not None]
        self._cache.extend(self._batched(admitted) if self._batching else admitted)

    def _round_trip(
        self, conn: psycopg.Connection[Any], deletes: list[int], qty: int
    ) -> list[tuple[Any, ...]]:
        params = {
            "queue": self.queue_name,
            "vt": self._broker.visibility_timeout_seconds,
            "qty": qty,
        }
        read = queue_query("read_group_heads" if self._ordered else "read", self.queue_name)
        if not deletes:  # the usual case on queues whose handlers delete in their transaction
            return conn.execute(read, params).fetchall() if qty > 0 else []
        cursor = None
        with conn.pipeline():
            conn.execute(queue_query("delete_many", self.queue_name), {"msg_ids": deletes})
            if qty > 0:
                cursor = conn.execute(read, params)
        return [] if cursor is None else cursor.fetchall()

    def _batched(self, proxies: list[PgmqMessageProxy]) -> list[PgmqMessageProxy]:
        """First-time deliveries in batches for the batch actor; the others alone."""
        assert self._batching is not None
        alone = [p for p in proxies if p.stored.read_ct > 1]
        fresh = [p for p in proxies if p.stored.read_ct <= 1]
        size = self._batching.max_size
        for start in range(0, len(fresh), size):
            chunk = fresh[start : start + size]
            if len(chunk) == 1:
                alone.append(chunk[0])
                continue
            carrier: dramatiq.Message[Any] = dramatiq.Message(
                queue_name=self.queue_name, actor_name=self._batching.actor_name, args=(),
                kwargs={}, options={wire.MSG_ID_OPTION: chunk[0].msg_id},
            )  # fmt: skip
            alone.append(PgmqBatchProxy(carrier, chunk))
        return alone

    def _admit(self, row: tuple[Any, ...]) -> PgmqMessageProxy | None:
        """A read message for delivery, or None when it must not run (parked)."""
        msg_id, read_ct, enqueued_at, body, headers, blocked_by, _ = row
        stored = StoredMessage(self.queue_name, msg_id, read_ct, enqueued_at, body, headers)
        if blocked_by is not None:
            if self._broker.run(lambda conn: parking.park_behind(conn, stored)) is None:
                # The blocker was re-queued meanwhile and is the group's head again.
                self._make_visible([msg_id], 0)
            return None
        try:
            message = decode(self.queue_name, body)
        except (KeyError, TypeError, ValueError) as exc:
            self._park(stored, f"undecodable message: {parking.error_text(exc)}")
            return None
        allowed = attempts_allowed(self._broker, message)
        if allowed is not None and read_ct > allowed + UNFINISHED_DELIVERY_GRACE:
            self._park(
                stored,
                f"delivered {read_ct} times, {allowed} allowed (+{UNFINISHED_DELIVERY_GRACE} "
                "for deliveries cut off by a crash or outage): earlier attempts ended without "
                "an outcome (their worker died or lost its connection)",
            )
            return None
        message.options[wire.MSG_ID_OPTION] = msg_id
        message.options[wire.READ_COUNT_OPTION] = read_ct
        with self._lock:
            self._in_flight.add(msg_id)
        return PgmqMessageProxy(message, stored)

    def _park(self, stored: StoredMessage, error: str) -> None:
        parked = self._broker.run(lambda conn: parking.park(conn, stored, error))
        correlation = str((stored.headers or {}).get(wire.CORRELATION_HEADER) or "")
        with logcontext.bound(**({"correlation_id": correlation} if correlation else {})):
            if parked is None:  # another delivery finished it meanwhile: nothing to retry
                log.info(
                    "message %s of queue %s was gone when it was to be parked: %s",
                    stored.msg_id, self.queue_name, error.splitlines()[0],
                )  # fmt: skip
                return
            log.warning(
                "parked message %s of queue %s as #%s: %s (after fixing the cause: POST "
                "/ops/dead-letters/%s/retry; to drop it: DELETE /ops/dead-letters/%s)",
                stored.msg_id, self.queue_name, parked, error.splitlines()[0], parked, parked,
            )  # fmt: skip

    def _make_visible(self, msg_ids: list[int], delay_ms: int, *, counted: bool = True) -> None:
        params = {"queue": self.queue_name, "msg_ids": msg_ids, "delay_ms": delay_ms}
        sql = query("broker.set_visible_in" if counted else "broker.retry_uncounted")
        self._broker.run(lambda conn: conn.execute(sql, params))

    def _settle(self, message: MessageProxy) -> tuple[PgmqMessageProxy, bool, bool]:
        """The delivery as ours, whether its handler already deleted it (settled) and whether
        to read again at once (wake): its end gave back room this consumer lacked to read, or
        its delete let out a later message of its FIFO group. Otherwise a read now would only
        repeat the last one: a new message rings the doorbell itself (NOTIFY)."""
        if not isinstance(message, PgmqMessageProxy):
            raise TypeError(f"not a message delivered by PgmqBroker: {message!r}")
        with self._lock:
            room_before = self.prefetch - len(self._in_flight)
            self._in_flight.difference_update(message.msg_ids)
            room_after = self.prefetch - len(self._in_flight)
        wake = room_before < self._low_water <= room_after
        if self._broker.lets_out(self.queue_name, message.msg_ids):
            wake = True
        if isinstance(message, PgmqBatchProxy):
            return message, message.done, wake
        return message, self._broker.forget_settled(self.queue_name, message.msg_id), wake

    def _split(self, batch: PgmqBatchProxy) -> None:
        """Make the messages of a batch that did not commit visible again at once; having
        been read before, each is then delivered alone."""
        log.info(
            "batch of %d messages of %s did not commit; each runs alone next",
            len(batch.parts), self.queue_name,
        )  # fmt: skip
        self._make_visible(batch.msg_ids, 0)

    def ack(self, message: MessageProxy) -> None:
        proxy, settled, wake = self._settle(message)
        try:
            if isinstance(proxy, PgmqBatchProxy):
                if not settled:
                    wake = True
                    self._split(proxy)
            elif proxy.retry_in_ms is not None:
                # Stays in the queue; an ordered group stays blocked behind it while it waits.
                wake = True
                self._make_visible([proxy.msg_id], proxy.retry_in_ms, counted=proxy.attempt_counts)
            elif not settled:
                # Deleted by the next exchange, which reads in the same round trip.
                self._acks.add(proxy.msg_id, monotonic())
        finally:
            if wake:
                self._bell.ring()

    def nack(self, message: MessageProxy) -> None:
        proxy, settled, _ = self._settle(message)
        if isinstance(proxy, PgmqBatchProxy):
            try:
                if not settled:
                    self._split(proxy)  # never parked as a whole
            finally:
                self._bell.ring()
            return
        reason = proxy.park_reason
        if reason is None:
            exc = proxy.exception
            reason = parking.error_text(exc) if exc is not None else "rejected by the worker"
        try:
            self._park(proxy.stored, reason)
        finally:
            self._bell.ring()

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        """Messages the worker will not run (shutdown): visible again at once, for anyone."""
        ids = []
        for message in messages:
            proxy, _, _ = self._settle(message)
            ids.extend(proxy.msg_ids)
        if ids:
            self._make_visible(ids, 0)

    def close(self) -> None:
        """Return undelivered messages and delete the acked ones; never raises but
        ``ConnectionClosed`` (Dramatiq's consumer thread only expects that one)."""
        try:
            undelivered = list(self._cache)
            self._cache.clear()
            self.requeue(undelivered)
            deletes = self._acks.take()
            if deletes:
                try:
                    self._broker.run(lambda conn: self._round_trip(conn, deletes, 0))
                except BaseException:
                    self._acks.put_back(deletes, monotonic())
                    raise
        except ConnectionClosed:
            raise
        except Exception:
            log.exception("closing the consumer of %s failed", self.queue_name)
