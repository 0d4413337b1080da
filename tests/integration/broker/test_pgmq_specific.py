"""What PgmqBroker adds to the contract: FIFO groups, parking per group, transactional send and
ack, and a visibility timeout that always outlasts the time limit."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import dramatiq
import psycopg
import pytest

from outbox import wire
from outbox.broker import PgmqBroker
from outbox.broker_consumer import UNFINISHED_DELIVERY_GRACE, PgmqConsumer
from outbox.parking import discard_parked, list_parked, requeue_parked
from tests.integration.broker.conftest import running_worker
from tests.waiting import wait_until

MakeBroker = Callable[..., PgmqBroker]
FAST_RETRIES = {"min_backoff": 10, "max_backoff": 40}


class GroupLog:
    """Records, per FIFO group, what started and finished, and whether a group ever had two
    messages running at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: dict[str, list[int]] = defaultdict(list)
        self.finished: dict[str, list[int]] = defaultdict(list)
        self.running: set[str] = set()
        self.overlaps: list[str] = []
        self.most_groups_at_once = 0

    def start(self, group: str, seq: int) -> None:
        with self.lock:
            if group in self.running:
                self.overlaps.append(group)
            self.running.add(group)
            self.started[group].append(seq)
            self.most_groups_at_once = max(self.most_groups_at_once, len(self.running))

    def end(self, group: str, seq: int, ok: bool) -> None:
        with self.lock:
            self.running.discard(group)
            if ok:
                self.finished[group].append(seq)


def _ordered_actor(
    broker: PgmqBroker, fn: Callable[..., None], **options: Any
) -> dramatiq.Actor[Any, Any]:
    queue = f"ordered_{uuid.uuid4().hex[:8]}"
    broker.declare_queue(queue, ordered=True)
    return dramatiq.actor(actor_name=queue, queue_name=queue, broker=broker, **options)(fn)


def _send_groups(actor: dramatiq.Actor[Any, Any], groups: list[str], per_group: int) -> None:
    for seq in range(per_group):
        for group in groups:
            actor.send_with_options(args=(group, seq), group=group)


class TestOrderedQueues:
    def test_each_group_runs_in_order_one_at_a_time_while_groups_run_in_parallel(
        self, make_pgmq_broker: MakeBroker
    ) -> None:
        broker = make_pgmq_broker()
        log = GroupLog()
        failed_once: set[tuple[str, int]] = set()

        def step(group: str, seq: int) -> None:
            log.start(group, seq)
            time.sleep(0.002)
            if (group, seq) == ("g2", 7) and not failed_once:
                failed_once.add((group, seq))
                log.end(group, seq, ok=False)
                raise RuntimeError("fails once in the middle of its group")
            log.end(group, seq, ok=True)

        actor = _ordered_actor(broker, step, max_retries=3, **FAST_RETRIES)
        groups = [f"g{i}" for i in range(6)]
        _send_groups(actor, groups, per_group=15)
        with running_worker(broker, threads=4):
            broker.join(actor.queue_name, timeout=20_000)

        assert {g: log.finished[g] for g in groups} == {g: list(range(15)) for g in groups}
        assert log.started["g2"] == [*range(8), 7, *range(8, 15)], "the retry held its group"
        assert log.overlaps == []
        assert log.most_groups_at_once > 1, "different groups should run concurrently"

    def test_messages_without_a_group_share_one_default_group(
        self, make_pgmq_broker: MakeBroker
    ) -> None:
        broker = make_pgmq_broker()
        seen: list[int] = []
        actor = _ordered_actor(broker, seen.append)
        for n in range(20):
            actor.send(n)
        with running_worker(broker, threads=4):
            broker.join(actor.queue_name, timeout=10_000)
        assert seen == list(range(20))


def _parked(url: str, queue: str | None = None) -> list[Any]:
    with psycopg.connect(url) as conn:
        return list_parked(conn, queue)


class TestParking:
    def test_a_poison_message_holds_back_its_group_only(
        self, make_pgmq_broker: MakeBroker, database_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        broker = make_pgmq_broker()
        log = GroupLog()
        poisoned = {"a": True}

        def step(group: str, seq: int) -> None:
            log.start(group, seq)
            ok = not (group == "a" and seq == 0 and poisoned["a"])
            log.end(group, seq, ok)
            if not ok:
                raise ValueError("poison pill")

        actor = _ordered_actor(broker, step, max_retries=1, **FAST_RETRIES)
        _send_groups(actor, ["a", "b"], per_group=4)
        with running_worker(broker, threads=3):
            broker.join(actor.queue_name, timeout=10_000)
            parked = _parked(database_url, actor.queue_name)
            assert log.finished == {"b": [0, 1, 2, 3]}
            assert log.started["a"] == [0, 0], "two attempts, then parked; a1..a3 never ran"
            assert [(p.group_key, p.message["args"]) for p in parked] == [
                ("a", ["a", 0]), ("a", ["a", 1]), ("a", ["a", 2]), ("a", ["a", 3]),
            ]  # fmt: skip
            head, *behind = parked
            assert head.read_ct == 2
            assert head.error.startswith("ValueError: poison pill")
            assert "Traceback" in head.error
            assert {p.error for p in behind} == {f"waiting behind parked message #{head.id}"}
            # The log line says what to do next, with the parked id to do it with.
            said = [r.getMessage() for r in caplog.records if "parked message" in r.getMessage()]
            assert any(f"POST /ops/dead-letters/{head.id}/retry" in line for line in said), said

            poisoned["a"] = False
            with psycopg.connect(database_url) as conn:
                requeued = requeue_parked(conn, head.id)
            assert requeued == [p.msg_id for p in parked], "back under their original ids"
            wait_until(lambda: log.finished.get("a") == [0, 1, 2, 3], timeout=10)
        assert _parked(database_url) == []

    def test_requeued_messages_go_ahead_of_later_messages_of_their_group(
        self, make_pgmq_broker: MakeBroker, database_url: str
    ) -> None:
        broker = make_pgmq_broker()
        log = GroupLog()
        poisoned = {"x": True}

        def step(group: str, seq: int) -> None:
            log.start(group, seq)
            log.end(group, seq, ok=not poisoned["x"])
            if poisoned["x"]:
                raise ValueError("down")

        actor = _ordered_actor(broker, step, max_retries=0)
        _send_groups(actor, ["x"], per_group=2)
        with running_worker(broker):
            wait_until(lambda: len(_parked(database_url)) == 2, timeout=10)
        actor.send_with_options(args=("x", 2), group="x")  # queued while the group is parked
        poisoned["x"] = False
        with psycopg.connect(database_url) as conn:
            requeue_parked(conn, _parked(database_url)[0].id)
        with running_worker(broker):
            broker.join(actor.queue_name, timeout=10_000)
        assert log.finished["x"] == [0, 1, 2]

    def test_a_message_whose_earlier_deliveries_died_is_parked_without_running(
        self, make_pgmq_broker: MakeBroker, database_url: str
    ) -> None:
        broker = make_pgmq_broker()
        runs: list[int] = []
        queue = f"q_{uuid.uuid4().hex[:8]}"
        actor = dramatiq.actor(actor_name=queue, queue_name=queue, broker=broker, max_retries=1)(
            runs.append
        )
        actor.send(1)
        died = 2 + UNFINISHED_DELIVERY_GRACE  # deliveries whose workers died before any outcome
        with psycopg.connect(database_url, autocommit=True) as conn:
            for _ in range(died):
                conn.execute("SELECT * FROM pgmq.read(%s, 0, 1)", [queue])
        with running_worker(broker):
            wait_until(lambda: _parked(database_url), timeout=10)
            broker.join(queue, timeout=10_000)
        [parked] = _parked(database_url)
        assert runs == []
        assert parked.read_ct == died + 1
        assert (
            f"delivered {died + 1} times, 2 allowed (+{UNFINISHED_DELIVERY_GRACE}" in parked.error
        )

    def test_discarding_a_parked_message_deletes_it_for_good(
        self, make_pgmq_broker: MakeBroker, database_url: str
    ) -> None:
        broker = make_pgmq_broker()

        def fail() -> None:
            raise LookupError("gone")

        queue = f"q_{uuid.uuid4().hex[:8]}"
        actor = dramatiq.actor(actor_name=queue, queue_name=queue, broker=broker, max_retries=0)(
            fail
        )
        actor.send()
        with running_worker(broker):
            [parked] = wait_until(lambda: _parked(database_url), timeout=10)
        with psycopg.connect(database_url) as conn:
            assert discard_parked(conn, parked.id) is True
            assert discard_parked(conn, parked.id) is False
            assert requeue_parked(conn, parked.id) == []
        assert _parked(database_url) == []
        assert broker.queue_length(queue) == 0


def _message(queue: str, *args: Any) -> dramatiq.Message[Any]:
    return dramatiq.Message(queue_name=queue, actor_name="effect", args=args, kwargs={}, options={})


class TestTransactionalAck:
    def test_effects_and_the_ack_commit_together_inside_an_actor(
        self, make_pgmq_broker: MakeBroker, database_url: str
    ) -> None:
        broker = make_pgmq_broker()
        queue = f"q_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE public.effect (n integer PRIMARY KEY)")

        def effect(n: int) -> None:
            message = dramatiq.middleware.CurrentMessage.get_current_message()
            with psycopg.connect(database_url) as conn, conn.transaction():
                conn.execute("INSERT INTO public.effect VALUES (%s)", [n])
                assert broker.ack_in_transaction(conn, message)

        actor = dramatiq.actor(actor_name="effect", queue_name=queue, broker=broker)(effect)
        for n in range(10):
            actor.send(n)
        with running_worker(broker):
            broker.join(queue, timeout=10_000)
        with psycopg.connect(database_url) as conn:
            rows = conn.execute("SELECT n FROM public.effect ORDER BY n").fetchall()
        assert [r[0] for r in rows] == list(range(10))

    def test_false_for_a_message_already_deleted_and_the_rollback_undoes_the_effects(
        self, make_pgmq_broker: MakeBroker, database_url: str
    ) -> None:
        broker = make_pgmq_broker()
        broker.declare_queue("tx_ack")
        broker.enqueue(_message("tx_ack", 1))
        consumer = broker.consume("tx_ack", prefetch=1, timeout=2000)
        delivered = next(consumer)
        assert delivered is not None
        msg_id = delivered.options[wire.MSG_ID_OPTION]
        with psycopg.connect(database_url) as conn:
            conn.execute("CREATE TEMP TABLE effect (n integer)")
            conn.commit()
            conn.execute("SELECT pgmq.delete('tx_ack', %s::bigint)", [msg_id])  # another delivery
            conn.commit()
            conn.execute("INSERT INTO effect VALUES (1)")
            assert broker.ack_in_transaction(conn, delivered) is False
            conn.rollback()
            assert conn.execute("SELECT count(*) FROM effect").fetchone() == (0,)
        consumer.ack(delivered)
        consumer.close()

    def test_the_workers_ack_trusts_the_transactional_one_and_deletes_nothing_more(
        self, make_pgmq_broker: MakeBroker, database_url: str
    ) -> None:
        broker = make_pgmq_broker()
        broker.declare_queue("tx_ack")
        broker.enqueue(_message("tx_ack", 1))
        consumer = broker.consume("tx_ack", prefetch=1, timeout=2000)
        delivered = next(consumer)
        assert delivered is not None
        with psycopg.connect(database_url) as conn:
            assert broker.ack_in_transaction(conn, delivered) is True
            conn.rollback()  # only to observe that the worker's ack below deletes nothing
        consumer.ack(delivered)
        consumer.close()
        assert broker.queue_length("tx_ack") == 1


class TestTransactionalSend:
    def test_a_send_exists_only_if_its_transaction_commits(
        self, make_pgmq_broker: MakeBroker, database_url: str
    ) -> None:
        broker = make_pgmq_broker()
        with psycopg.connect(database_url) as conn:
            broker.send_in_transaction(conn, _message("tx_send", "rolled back"), group="g")
            conn.rollback()
            assert broker.queue_length("tx_send") == 0
            msg_id = broker.send_in_transaction(conn, _message("tx_send", "kept"), delay_ms=5000)
            conn.commit()
            row = conn.execute(
                "SELECT message, headers, vt - clock_timestamp() > interval '4 seconds'"
                " FROM pgmq.q_tx_send WHERE msg_id = %s",
                [msg_id],
            ).fetchone()
        assert row is not None
        body, headers, delayed = row
        assert body["args"] == ["kept"] and headers is None and delayed


class TestVisibilityTimeout:
    def test_a_timeout_not_longer_than_the_time_limit_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="must exceed"):
            PgmqBroker(
                "postgresql:///unused", visibility_timeout_seconds=30, actor_time_limit_seconds=30
            )

    def test_an_actor_time_limit_beyond_the_timeout_is_rejected(self) -> None:
        broker = PgmqBroker(
            "postgresql:///unused", visibility_timeout_seconds=10, actor_time_limit_seconds=5
        )
        with pytest.raises(ValueError, match="must stay below"):
            dramatiq.actor(actor_name="slow", broker=broker, time_limit=10_000)(print)


class TestEnqueueBatch:
    def test_a_batch_lands_in_order_with_each_group_and_its_msg_ids_in_that_order(
        self, make_pgmq_broker: MakeBroker, database_url: str
    ) -> None:
        broker = make_pgmq_broker()
        broker.declare_queue("batch_send")
        grouped = [_message("batch_send", f"m{i}") for i in range(3)]
        grouped[1].options["group"] = "g1"

        ids = broker.enqueue_batch(grouped)
        plain = broker.enqueue_batch([_message("batch_send", "later")], delay=5000)

        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT msg_id, message -> 'args' ->> 0, headers,"
                " vt - clock_timestamp() > interval '4 seconds'"
                " FROM pgmq.q_batch_send ORDER BY msg_id"
            ).fetchall()
        assert ids == sorted(ids) and [r[0] for r in rows] == [*ids, *plain]
        assert [(r[1], r[2], r[3]) for r in rows] == [
            ("m0", None, False),
            ("m1", {wire.GROUP_HEADER: "g1"}, False),
            ("m2", None, False),
            ("later", None, True),
        ]


class TestIdlePolling:
    """A consumer never polls blindly: every read says when the next message that is not
    visible yet shows up, and it sleeps until then (or poll_max), unless a NOTIFY rings first.
    Before, empty reads repeated at 20, 40, 80 ms... and an idle consumer asked for that time
    in a round trip of its own: with two workers, four reads per message at 25 reservations/s,
    most of them empty."""

    def test_a_delayed_message_is_read_when_it_shows_after_one_empty_read(
        self, make_pgmq_broker: MakeBroker
    ) -> None:
        broker = make_pgmq_broker(poll_min_ms=10, poll_max_ms=5000)
        broker.declare_queue("delayed")
        broker.enqueue(_message("delayed", 1), delay=400)
        bell = broker.doorbell("delayed")
        wait_until(lambda: bell.ticket() >= 1, timeout=10)  # the LISTEN connection's first ring
        consumer = broker.consume("delayed", prefetch=2, timeout=3000)
        assert isinstance(consumer, PgmqConsumer)
        delivered = next(consumer)  # long before the 5 s poll_max
        consumer.close()
        assert delivered is not None and delivered.args == (1,)
        assert consumer.empty_reads == 1

    def test_with_nothing_due_an_empty_read_is_not_repeated_before_poll_max(
        self, make_pgmq_broker: MakeBroker
    ) -> None:
        broker = make_pgmq_broker(poll_min_ms=10, poll_max_ms=2000)
        broker.declare_queue("quiet")
        bell = broker.doorbell("quiet")
        wait_until(lambda: bell.ticket() >= 1, timeout=10)
        consumer = broker.consume("quiet", prefetch=2, timeout=1000)
        assert next(consumer) is None
        consumer.close()
        assert isinstance(consumer, PgmqConsumer) and consumer.empty_reads == 1

    def test_a_message_let_out_by_its_groups_head_in_another_process_wakes_this_one(
        self, make_pgmq_broker: MakeBroker, database_url: str
    ) -> None:
        """The follower was visible but not readable (its head was in flight), so no read
        counted it as due; the head's delete NOTIFYs every process's consumers."""
        here, there = (make_pgmq_broker(poll_min_ms=10, poll_max_ms=10_000) for _ in range(2))
        for broker in (here, there):
            broker.declare_queue("let_out", ordered=True)
        for n in (1, 2):
            there.enqueue(_message("let_out", n), group="g")
        far = there.consume("let_out", prefetch=2, timeout=3000)
        head = next(far)
        assert head is not None and head.args == (1,)
        bell = here.doorbell("let_out")
        wait_until(lambda: bell.ticket() >= 1, timeout=10)
        near = here.consume("let_out", prefetch=2, timeout=20_000)
        assert isinstance(near, PgmqConsumer)
        got: list[Any] = []
        waiter = threading.Thread(target=lambda: got.append(next(near)))
        waiter.start()
        wait_until(lambda: near.empty_reads >= 1, timeout=5)  # found nothing: 10 s to sleep
        with psycopg.connect(database_url) as conn, conn.transaction():
            assert there.ack_in_transaction(conn, head)
        far.ack(head)
        wait_until(lambda: bool(got), timeout=5)
        waiter.join()
        near.close()
        far.close()
        assert got[0] is not None and got[0].args == (2,)


class TestReadingAgainAfterAcks:
    """After a delivery ends the consumer reads again at once only when that can find
    something: its delete let out a later message of the same FIFO group, or it gave back
    room the consumer lacked to read. New messages ring the doorbell themselves (NOTIFY), so a
    read after every ack came back empty (one read in four at 25 reservations/s). The polls
    here are seconds apart, so a message delivered within the consumer's 1 s timeout was
    read because the ack rang."""

    def _consumer(self, broker: PgmqBroker, queue: str, prefetch: int = 2) -> PgmqConsumer:
        # The LISTEN connection rings every doorbell once it is up: let that ring come first.
        bell = broker.doorbell(queue)
        wait_until(lambda: bell.ticket() >= 1, timeout=10)
        consumer = broker.consume(queue, prefetch=prefetch, timeout=1000)
        assert isinstance(consumer, PgmqConsumer)
        return consumer

    def _ack_in_handler(self, broker: PgmqBroker, database_url: str, delivered: Any) -> None:
        with psycopg.connect(database_url) as conn, conn.transaction():
            assert broker.ack_in_transaction(conn, delivered)

    def test_an_ack_that_lets_the_next_message_of_its_group_out_reads_it_at_once(
        self, make_pgmq_broker: MakeBroker, database_url: str
    ) -> None:
        broker = make_pgmq_broker(poll_min_ms=5000, poll_max_ms=10_000)
        broker.declare_queue("followers", ordered=True)
        for n in (1, 2):
            broker.enqueue(_message("followers", n), group="g")
        consumer = self._consumer(broker, "followers")
        first = next(consumer)
        assert first is not None and first.args == (1,)
        self._ack_in_handler(broker, database_url, first)
        consumer.ack(first)
        second = next(consumer)
        consumer.close()
        assert second is not None and second.args == (2,)

    def test_a_batch_whose_deletes_let_followers_out_reads_them_at_once(
        self, make_pgmq_broker: MakeBroker, database_url: str
    ) -> None:
        broker = make_pgmq_broker(poll_min_ms=5000, poll_max_ms=10_000)
        broker.declare_queue("batch_followers", ordered=True)
        for n, group in ((1, "a"), (2, "b"), (3, "b")):
            broker.enqueue(_message("batch_followers", n), group=group)
        consumer = self._consumer(broker, "batch_followers", prefetch=4)
        read = [next(consumer), next(consumer)]
        assert [m.args for m in read if m is not None] == [(1,), (2,)]
        with psycopg.connect(database_url) as conn, conn.transaction():
            ids = [int(m.options[wire.MSG_ID_OPTION]) for m in read if m is not None]
            assert broker.ack_many_in_transaction(conn, "batch_followers", ids) == set(ids)
        for message in read:
            assert message is not None
            consumer.ack(message)
        third = next(consumer)
        consumer.close()
        assert third is not None and third.args == (3,)

    @pytest.mark.parametrize("ordered", [True, False])
    def test_an_ack_with_nothing_behind_it_does_not_read_again(
        self, make_pgmq_broker: MakeBroker, database_url: str, ordered: bool
    ) -> None:
        broker = make_pgmq_broker(poll_min_ms=5000, poll_max_ms=10_000)
        broker.declare_queue("alone", ordered=ordered)
        broker.enqueue(_message("alone", 1), group="g" if ordered else None)
        consumer = self._consumer(broker, "alone")
        delivered = next(consumer)
        assert delivered is not None
        self._ack_in_handler(broker, database_url, delivered)
        consumer.ack(delivered)
        assert next(consumer) is None  # a second's wait, with no read
        consumer.close()
        assert consumer.empty_reads == 0

    def test_an_ack_that_gives_back_the_room_to_read_wakes_a_waiting_consumer(
        self, make_pgmq_broker: MakeBroker, database_url: str
    ) -> None:
        broker = make_pgmq_broker(poll_min_ms=5000, poll_max_ms=10_000)
        broker.declare_queue("no_room")
        for n in (1, 2, 3):
            broker.enqueue(_message("no_room", n))
        bell = broker.doorbell("no_room")
        wait_until(lambda: bell.ticket() >= 1, timeout=10)
        consumer = broker.consume("no_room", prefetch=2, timeout=20_000)
        assert isinstance(consumer, PgmqConsumer)
        held = [next(consumer), next(consumer)]  # the whole prefetch: no room to read more
        assert [m.args for m in held if m is not None] == [(1,), (2,)]
        got: list[Any] = []
        waiter = threading.Thread(target=lambda: got.append(next(consumer)))
        waiter.start()  # sleeps: no room to read, and the next poll is seconds away
        assert held[0] is not None
        self._ack_in_handler(broker, database_url, held[0])
        consumer.ack(held[0])
        wait_until(lambda: bool(got), timeout=5)  # not the consumer's 20 s timeout
        waiter.join()
        consumer.close()
        assert got[0] is not None and got[0].args == (3,)
