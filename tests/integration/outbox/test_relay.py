"""The relay: every committed event reaches every subscriber once, in per-stream order."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from outbox import wire
from outbox.broker_message import decode
from outbox.envelope import Envelope, MessageContext, NewMessage
from outbox.log import ConcurrencyConflict, append
from outbox.relay import (
    PROJECTION_WAKEUP_CHANNEL,
    Relay,
    Route,
    message_id,
    relay_batch,
    sync_routes,
)
from sql import query
from tests.waiting import wait_until

ORDERS = Route(
    "orders_policy", "orders_policy", frozenset({"shop.OrderPlaced", "shop.OrderPaid"}), True
)
AUDIT = Route("audit_trail", "audit_trail", frozenset({"shop.OrderPlaced"}), False)


def _subscribe(url: str, *routes: Route) -> None:
    with psycopg.connect(url) as conn:
        sync_routes(conn, routes)


def _append(conn: psycopg.Connection[Any], stream: str, type_: str = "shop.OrderPlaced") -> None:
    append(conn, [NewMessage(type_, stream, {"stream": stream})], MessageContext.new("test"))


def _relay_all(url: str, batch_size: int = 100) -> int:
    total = 0
    with psycopg.connect(url) as conn:
        while True:
            with conn.transaction():
                done = relay_batch(conn, batch_size)
            assert done is not None, "no other relay runs here, so this one must lead"
            if done == 0:
                return total
            total += done


def _queue(conn: psycopg.Connection[Any], queue: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT message, headers FROM pgmq.q_" + queue + " ORDER BY msg_id"
    ).fetchall()
    return [{"body": r[0], "headers": r[1]} for r in rows]


class TestRelayingCommittedEvents:
    def test_each_subscriber_gets_each_matching_event_as_a_dramatiq_message(
        self, database_url: str
    ) -> None:
        _subscribe(database_url, ORDERS, AUDIT)
        stream = f"order-{uuid.uuid4()}"
        with psycopg.connect(database_url) as conn:
            _append(conn, stream, "shop.OrderPlaced")
            _append(conn, stream, "shop.OrderPaid")
            _append(conn, stream, "shop.Unrelated")
        assert _relay_all(database_url) == 3
        with psycopg.connect(database_url) as conn:
            orders = _queue(conn, "orders_policy")
            audit = _queue(conn, "audit_trail")
            unrelayed = conn.execute(
                "SELECT count(*) FROM outbox.event WHERE global_position IS NULL"
            ).fetchone()
        assert [m["body"]["args"][0]["type"] for m in orders] == [
            "shop.OrderPlaced",
            "shop.OrderPaid",
        ]
        assert [m["body"]["actor_name"] for m in orders] == ["orders_policy"] * 2
        assert all(m["headers"]["x-pgmq-group"] == stream for m in orders)
        assert [m["body"]["args"][0]["type"] for m in audit] == ["shop.OrderPlaced"]
        assert "x-pgmq-group" not in audit[0]["headers"], "unordered queues carry no FIFO group"
        assert unrelayed == (0,)

    def test_the_message_is_the_envelope_as_consumers_decode_it_with_a_stable_id(
        self, database_url: str
    ) -> None:
        _subscribe(database_url, ORDERS, AUDIT)
        stream = f"order-{uuid.uuid4()}"
        ctx = MessageContext(uuid.uuid4(), uuid.uuid4(), "alice")
        with psycopg.connect(database_url) as conn:
            append(conn, [NewMessage("shop.OrderPlaced", stream, {"n": 1, "x": [True]})], ctx)
        _relay_all(database_url)
        with psycopg.connect(database_url) as conn, conn.cursor(row_factory=dict_row) as cur:
            event = cur.execute("SELECT * FROM outbox.event").fetchone()
            stored = {
                queue: cur.execute(f"SELECT * FROM pgmq.q_{queue}").fetchone()
                for queue in ("orders_policy", "audit_trail")
            }
        assert event is not None
        for route in (ORDERS, AUDIT):
            row = stored[route.queue_name]
            assert row is not None
            message = decode(route.queue_name, row["message"])
            assert Envelope.from_json(message.args[0]) == Envelope.from_row(event)
            assert message.actor_name == route.name
            assert message.message_id == message_id(event["event_id"], route.name)
            assert message.message_timestamp == int(event["occurred_at"].timestamp() * 1000)
            assert row["headers"]["x-correlation-id"] == str(ctx.correlation_id)
        assert stored["orders_policy"]["headers"]["x-pgmq-group"] == stream

    def test_subscribers_sharing_a_queue_get_its_messages_in_log_order(
        self, database_url: str
    ) -> None:
        first = Route("first_reader", "shared_q", frozenset({"shop.OrderPlaced"}), True)
        second = Route("second_reader", "shared_q", frozenset({"shop.OrderPlaced"}), True)
        _subscribe(database_url, first, second)
        with psycopg.connect(database_url) as conn:
            for i in range(3):
                _append(conn, f"order-{i}")
        _relay_all(database_url)
        with psycopg.connect(database_url) as conn:
            got = [
                (m["body"]["args"][0]["stream"], m["body"]["actor_name"])
                for m in _queue(conn, "shared_q")
            ]
        assert got == [
            (f"order-{i}", r) for i in range(3) for r in ("first_reader", "second_reader")
        ]

    def test_global_positions_are_gap_free_and_follow_position_order(
        self, database_url: str
    ) -> None:
        _subscribe(database_url, ORDERS)
        with psycopg.connect(database_url) as conn:
            for i in range(25):
                _append(conn, f"order-{i % 4}")
        _relay_all(database_url, batch_size=7)
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT position, global_position FROM outbox.event ORDER BY position"
            ).fetchall()
        assert [g for _, g in rows] == list(range(1, 26))


class TestGapSafety:
    def test_event_committing_after_a_later_numbered_one_is_still_relayed(
        self, database_url: str
    ) -> None:
        _subscribe(database_url, ORDERS)
        early = psycopg.connect(database_url)
        try:
            _append(early, "order-early")  # takes the lower position, stays uncommitted
            with psycopg.connect(database_url) as late:
                _append(late, "order-late")  # higher position, commits first
            assert _relay_all(database_url) == 1
            early.commit()
        finally:
            early.close()
        assert _relay_all(database_url) == 1
        with psycopg.connect(database_url) as conn:
            streams = [m["body"]["args"][0]["stream"] for m in _queue(conn, "orders_policy")]
            positions = conn.execute(
                "SELECT stream, position, global_position FROM outbox.event ORDER BY global_position"
            ).fetchall()
        assert streams == ["order-late", "order-early"]
        assert positions[0][1] > positions[1][1], "the early event has the lower position"

    def test_rolled_back_events_are_never_relayed(self, database_url: str) -> None:
        _subscribe(database_url, ORDERS)
        with psycopg.connect(database_url) as conn:
            _append(conn, "order-doomed")
            conn.rollback()
        assert _relay_all(database_url) == 0


def _relay_with_batches(url: str, batch_size: int, done: threading.Event) -> None:
    """relay_batch in a transaction of its own, as tools and tests call it."""
    with psycopg.connect(url) as conn:
        while True:
            with conn.transaction():
                relayed = relay_batch(conn, batch_size)
            if done.is_set() and relayed == 0:
                return


def _relay_pipelined(url: str, batch_size: int, done: threading.Event) -> None:
    """Relay.relay_once: one pipelined round trip per batch, as the workers' relays run."""
    with ConnectionPool(url, min_size=1, max_size=1, open=True) as pool:
        relay = Relay(pool, url, batch_size=batch_size)
        while True:
            relayed = relay.relay_once()
            if done.is_set() and relayed == 0:
                return


class TestConcurrency:
    @pytest.mark.parametrize("relay_loop", [_relay_with_batches, _relay_pipelined])
    def test_concurrent_writers_and_two_relays_deliver_each_event_once_in_stream_order(
        self, database_url: str, relay_loop: Any
    ) -> None:
        _subscribe(database_url, ORDERS)
        streams = [f"order-{i}" for i in range(8)]
        writers_done = threading.Event()
        errors: list[BaseException] = []

        def write(worker: int) -> None:
            try:
                with psycopg.connect(database_url) as conn:
                    for i in range(60):
                        stream = streams[(worker + i) % len(streams)]
                        for _attempt in range(50):
                            try:
                                with conn.transaction():
                                    _append(conn, stream)
                                break
                            except ConcurrencyConflict:  # another writer took this version
                                continue
            except BaseException as exc:
                errors.append(exc)

        def relay() -> None:
            try:
                relay_loop(database_url, 17, writers_done)
            except BaseException as exc:
                errors.append(exc)

        writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
        relays = [threading.Thread(target=relay) for _ in range(2)]
        for t in writers + relays:
            t.start()
        for t in writers:
            t.join()
        writers_done.set()
        for t in relays:
            t.join(timeout=60)
        assert not errors, errors
        _relay_all(database_url)

        with psycopg.connect(database_url) as conn:
            messages = _queue(conn, "orders_policy")
            total = conn.execute("SELECT count(*) FROM outbox.event").fetchone()
        seen = [m["body"]["args"][0]["event_id"] for m in messages]
        assert total == (240,)
        assert len(seen) == 240 and len(set(seen)) == 240, "each event exactly once"
        versions: dict[str, list[int]] = defaultdict(list)
        for m in messages:
            env = m["body"]["args"][0]
            versions[env["stream"]].append(env["version"])
        for stream, got in versions.items():
            assert got == sorted(got), f"{stream} out of order: {got}"
            assert got == list(range(1, len(got) + 1))


class TestRelayOnce:
    def test_a_relay_that_does_not_lead_claims_nothing(self, database_url: str) -> None:
        _subscribe(database_url, ORDERS)
        with (
            psycopg.connect(database_url) as leader,
            ConnectionPool(database_url, min_size=1, max_size=1) as pool,
        ):
            with leader.transaction():
                assert leader.execute(query("outbox.relay_lock")).fetchone() == (True,)
                with psycopg.connect(database_url) as conn:
                    _append(conn, "order-1")
                relay = Relay(pool, database_url)
                assert relay.relay_once() is None
                assert relay.relay_once() is None  # with its routes cached, too
            assert relay.relay_once() == 1
            assert len(_queue(leader, "orders_policy")) == 1

    def test_routes_that_changed_since_the_last_batch_are_read_again(
        self, database_url: str
    ) -> None:
        """The relay keeps its routes between batches; a worker that starts with other
        subscribers changes them, and the next batch follows the new ones."""
        _subscribe(database_url, ORDERS)
        with (
            psycopg.connect(database_url, autocommit=True) as conn,
            ConnectionPool(database_url, min_size=1, max_size=1) as pool,
        ):
            relay = Relay(pool, database_url)
            _append(conn, "order-1")
            assert relay.relay_once() == 1
            _subscribe(database_url, ORDERS, AUDIT)
            _append(conn, "order-2")
            assert relay.relay_once() == 1
            narrower = Route("orders_policy", "orders_policy", frozenset({"shop.OrderPaid"}), True)
            _subscribe(database_url, narrower)
            _append(conn, "order-3")
            assert relay.relay_once() == 1
            orders = [m["body"]["args"][0]["stream"] for m in _queue(conn, "orders_policy")]
            audit = [m["body"]["args"][0]["stream"] for m in _queue(conn, "audit_trail")]
        assert orders == ["order-1", "order-2"]
        assert audit == ["order-2", "order-3"]

    def test_only_the_queues_that_got_messages_and_the_projections_are_notified(
        self, database_url: str
    ) -> None:
        _subscribe(database_url, ORDERS, AUDIT)
        channels = [wire.notify_channel(q) for q in ("orders_policy", "audit_trail")]
        with (
            psycopg.connect(database_url, autocommit=True) as listener,
            psycopg.connect(database_url, autocommit=True) as conn,
            ConnectionPool(database_url, min_size=1, max_size=1) as pool,
        ):
            for channel in [*channels, PROJECTION_WAKEUP_CHANNEL]:
                listener.execute(f'LISTEN "{channel}"')
            _append(conn, "order-1", "shop.OrderPaid")
            assert Relay(pool, database_url).relay_once() == 1
            got = {n.channel for n in listener.notifies(timeout=2.0, stop_after=2)}
            got |= {n.channel for n in listener.notifies(timeout=0.2)}
        assert got == {wire.notify_channel("orders_policy"), PROJECTION_WAKEUP_CHANNEL}


class TestAtomicity:
    def test_a_failed_send_leaves_no_position_assigned(self, database_url: str) -> None:
        _subscribe(database_url, ORDERS)
        with psycopg.connect(database_url) as conn:
            _append(conn, "order-1")
            conn.execute("SELECT pgmq.drop_queue('orders_policy')")
            conn.commit()
            with pytest.raises(psycopg.Error), conn.transaction():
                relay_batch(conn, 10)
            assert conn.execute(
                "SELECT count(*) FROM outbox.event WHERE global_position IS NULL"
            ).fetchone() == (1,)


class TestSyncingRoutesUnderLoad:
    def test_a_worker_starting_beside_a_busy_queue_does_not_wait_for_its_writers(
        self, database_url: str
    ) -> None:
        """A second worker syncs the routes while the first relays and consumes: with the
        queues already there, the sync takes no lock that waits for (or blocks) their
        writers. Before, pgmq.create and CREATE INDEX IF NOT EXISTS took a SHARE lock on
        each queue table, and could deadlock with the relay's inserts into several queues."""
        _subscribe(database_url, ORDERS, AUDIT)
        with psycopg.connect(database_url) as writer:
            # An open transaction holding what the relay's insert holds on both queues.
            for queue in ("orders_policy", "audit_trail"):
                writer.execute(
                    f"INSERT INTO pgmq.q_{queue} (vt, message) VALUES (now(), '{{}}'::jsonb)"
                )
            with psycopg.connect(database_url) as starting:
                starting.execute("SET lock_timeout = '2s'")
                sync_routes(starting, [ORDERS, AUDIT])
                starting.commit()
            writer.rollback()


def _spaced_relay_transactions(
    database_url: str, first: list[NewMessage], **relay_options: Any
) -> tuple[int, bool]:
    """A relay running with ``relay_options``: commit ``first`` in one transaction and wait for
    it to be relayed, then commit five events 50 ms apart (250 ms in all). Returns how many
    relay transactions the five took, and whether the relay was busy (paced) after the first
    batch."""
    _subscribe(database_url, ORDERS)
    stop = threading.Event()
    with (
        psycopg.connect(database_url, autocommit=True) as conn,
        ConnectionPool(database_url, min_size=1, max_size=2) as pool,
    ):
        relay = Relay(pool, database_url, idle_poll_seconds=0.05, **relay_options)
        runner = threading.Thread(target=relay.run, args=(stop,))
        runner.start()
        try:
            append(conn, first, MessageContext.new("test"))
            wait_until(lambda: relay.relayed_total == len(first), message="first relayed")
            busy = relay.pacing.busy
            for i in range(5):
                _append(conn, f"spaced-{i}")
                stop.wait(0.05)
            wait_until(lambda: relay.relayed_total == len(first) + 5, message="all relayed")
        finally:
            stop.set()
            runner.join(10)
        row = conn.execute(
            "SELECT count(DISTINCT xmin::text) FROM outbox.event WHERE stream LIKE 'spaced-%'"
        ).fetchone()
    assert row is not None
    return int(row[0]), busy


def _orders(count: int) -> list[NewMessage]:
    return [NewMessage("shop.OrderPlaced", f"first-{i}", {}) for i in range(count)]


class TestMinInterval:
    def test_a_busy_stretch_is_relayed_in_fewer_batches(self, database_url: str) -> None:
        """After a batch that found work the leader waits out ``min_interval_seconds`` before
        the next: events committed 50 ms apart meanwhile go in one batch (with a 50 ms poll
        and no interval, about one batch each)."""
        transactions, _ = _spaced_relay_transactions(
            database_url, _orders(1), min_interval_seconds=1.0, busy_interval_seconds=0
        )
        assert transactions <= 2, f"{transactions} relay transactions for five events"


class TestBusyPacing:
    @pytest.mark.parametrize(("first_batch", "most", "least"), [(12, 2, 1), (1, 5, 3)])
    def test_large_batches_space_the_next_ones_small_ones_do_not(
        self, database_url: str, first_batch: int, most: int, least: int
    ) -> None:
        """With ``busy_rows`` 3 a first batch of 12 rows (average 3 at weight 0.25) turns the
        relay busy: five events committed 50 ms apart meanwhile go in at most two batches.
        After a first batch of one row the relay stays eager: about one batch each."""
        transactions, busy = _spaced_relay_transactions(
            database_url, _orders(first_batch), busy_interval_seconds=1.0, busy_rows=3
        )
        assert busy == (first_batch >= 12)
        assert least <= transactions <= most, f"{transactions} relay transactions for five events"
