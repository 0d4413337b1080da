"""One behaviour contract for every Dramatiq broker we use: Dramatiq's StubBroker (the fake,
with Dramatiq's own Retries) and PgmqBroker (the real one). A test here describes what an actor
author may rely on, whichever broker runs it."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dramatiq
import psycopg
import pytest
from dramatiq.brokers.stub import StubBroker

from tests.integration.broker.conftest import running_worker
from tests.waiting import wait_until

FAST_RETRIES = {"min_backoff": 10, "max_backoff": 40}


@dataclass
class Subject:
    """A broker plus the way to count its dead letters."""

    broker: dramatiq.Broker
    dead_letters: Callable[[], int]

    def actor(self, fn: Callable[..., Any], **options: Any) -> dramatiq.Actor[Any, Any]:
        name = f"{fn.__name__}_{uuid.uuid4().hex[:8]}"
        return dramatiq.actor(actor_name=name, queue_name=name, broker=self.broker, **options)(fn)


@pytest.fixture(params=["stub", "pgmq"])
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    if request.param == "stub":
        stub = StubBroker(fail_fast_default=False)
        yield Subject(stub, lambda: len(stub.dead_letters))
        stub.close()
        return
    url: str = request.getfixturevalue("database_url")
    broker = request.getfixturevalue("make_pgmq_broker")()

    def parked() -> int:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM ops.parked_message").fetchone()
        return int(row[0]) if row else 0

    yield Subject(broker, parked)


class TestDelivery:
    def test_an_enqueued_message_runs_its_actor_exactly_once(self, subject: Subject) -> None:
        calls: Counter[str] = Counter()

        def record(key: str) -> None:
            calls[key] += 1

        actor = subject.actor(record)
        with running_worker(subject.broker):
            actor.send("only")
            subject.broker.join(actor.queue_name, timeout=10_000)
        assert calls == Counter({"only": 1})

    def test_args_and_kwargs_arrive_as_sent(self, subject: Subject) -> None:
        received: list[tuple[Any, ...]] = []

        def echo(*args: Any, **kwargs: Any) -> None:
            received.append((args, kwargs))

        actor = subject.actor(echo)
        with running_worker(subject.broker):
            actor.send_with_options(
                args=(1, "two", [3, 4], {"five": 5.5}, None), kwargs={"flag": True, "name": "하"}
            )
            subject.broker.join(actor.queue_name, timeout=10_000)
        assert received == [((1, "two", [3, 4], {"five": 5.5}, None), {"flag": True, "name": "하"})]

    def test_many_messages_over_several_threads_each_run_once(self, subject: Subject) -> None:
        calls: Counter[int] = Counter()
        lock = threading.Lock()

        def count(n: int) -> None:
            with lock:
                calls[n] += 1

        actor = subject.actor(count)
        for n in range(500):
            actor.send(n)
        with running_worker(subject.broker, threads=4):
            subject.broker.join(actor.queue_name, timeout=30_000)
        assert calls == Counter(range(500))

    def test_join_returns_only_when_every_message_has_run(self, subject: Subject) -> None:
        done: list[int] = []

        def slowish(n: int) -> None:
            time.sleep(0.005)
            done.append(n)

        actor = subject.actor(slowish)
        with running_worker(subject.broker, threads=2):
            for n in range(40):
                actor.send(n)
            subject.broker.join(actor.queue_name, timeout=10_000)
            assert sorted(done) == list(range(40))


class TestFlush:
    def test_flushed_messages_never_run(self, subject: Subject) -> None:
        calls: list[int] = []
        dropped = subject.actor(calls.append)
        kept = subject.actor(calls.append)
        for n in range(3):
            dropped.send(n)
        kept.send(99)
        subject.broker.flush(dropped.queue_name)
        with running_worker(subject.broker):
            subject.broker.join(kept.queue_name, timeout=10_000)
            subject.broker.join(dropped.queue_name, timeout=10_000)
        assert calls == [99]


class TestDelay:
    def test_a_delayed_message_runs_after_its_delay_and_not_before(self, subject: Subject) -> None:
        ran_at: list[float] = []

        def stamp() -> None:
            ran_at.append(time.monotonic())

        actor = subject.actor(stamp)
        with running_worker(subject.broker):
            sent_at = time.monotonic()
            actor.send_with_options(delay=400)
            wait_until(lambda: ran_at, timeout=5)
        assert ran_at[0] - sent_at >= 0.4
        assert len(ran_at) == 1


class TestRetries:
    def test_a_failing_actor_is_retried_until_it_succeeds(self, subject: Subject) -> None:
        attempts: list[int] = []

        def flaky() -> None:
            attempts.append(len(attempts) + 1)
            if len(attempts) < 3:
                raise RuntimeError(f"attempt {len(attempts)} fails")

        actor = subject.actor(flaky, max_retries=5, **FAST_RETRIES)
        with running_worker(subject.broker):
            actor.send()
            subject.broker.join(actor.queue_name, timeout=10_000)
        assert attempts == [1, 2, 3]
        assert subject.dead_letters() == 0

    def test_an_always_failing_actor_ends_as_a_dead_letter(self, subject: Subject) -> None:
        attempts: list[int] = []

        def broken() -> None:
            attempts.append(1)
            raise ValueError("never works")

        actor = subject.actor(broken, max_retries=2, **FAST_RETRIES)
        with running_worker(subject.broker):
            actor.send()
            wait_until(lambda: subject.dead_letters() == 1, timeout=10)
            subject.broker.join(actor.queue_name, timeout=10_000)
        assert len(attempts) == 3

    def test_retry_when_decides_instead_of_max_retries(self, subject: Subject) -> None:
        attempts: list[str] = []

        def picky(kind: str) -> None:
            attempts.append(kind)
            raise (KeyError if len(attempts) < 3 else ValueError)(kind)

        def only_key_errors(retries: int, exc: BaseException) -> bool:
            return isinstance(exc, KeyError)

        actor = subject.actor(picky, retry_when=only_key_errors, **FAST_RETRIES)
        with running_worker(subject.broker):
            actor.send("k")
            wait_until(lambda: subject.dead_letters() == 1, timeout=10)
        assert len(attempts) == 3, "two KeyErrors retried, the ValueError not"

    def test_an_exception_the_actor_throws_is_not_retried(self, subject: Subject) -> None:
        attempts: list[int] = []

        class Rejected(Exception):
            pass

        def strict() -> None:
            attempts.append(1)
            raise Rejected("invalid input")

        actor = subject.actor(strict, throws=(Rejected,), max_retries=5, **FAST_RETRIES)
        with running_worker(subject.broker):
            actor.send()
            wait_until(lambda: subject.dead_letters() == 1, timeout=10)
        assert attempts == [1]
