"""Deposit commands in batches: the batch's charges go to the provider together before its
handlers run, once per reservation, and a failing charge fails the batch without losing any
answer the provider gave (a retry with the same key gets it back)."""

from __future__ import annotations

import threading
import types
import uuid
from typing import Any

import psycopg
import pytest

from api.dining.deposits import ChargesAhead, deposit_handler
from domain.dining.messages import DepositPaid, TakeDeposit
from domain.payments import ChargeResult, PaymentUnavailable
from haengbok.payments.fake import FakePaymentProvider
from outbox.consumers import BatchScope, HandlerContext
from outbox.envelope import Envelope
from outbox.logcontext import bound_values
from tests.integration.dining.support import delivered


class MeetingProvider(FakePaymentProvider):
    """Each charge waits until ``together`` charges are in flight at once: charges made one
    after another never get there, and the barrier breaks (its timeout) instead."""

    def __init__(self, together: int) -> None:
        super().__init__()
        self._barrier = threading.Barrier(together, timeout=20)

    def charge(self, idempotency_key: str, amount: int, reference: str) -> ChargeResult:
        self._barrier.wait()
        return super().charge(idempotency_key, amount, reference)


class ContextRecordingProvider(FakePaymentProvider):
    """Records the logging context each charge runs in (key -> the ids bound for its lines)."""

    def __init__(self) -> None:
        super().__init__()
        self.contexts: dict[str, dict[str, Any]] = {}

    def charge(self, idempotency_key: str, amount: int, reference: str) -> ChargeResult:
        self.contexts[idempotency_key] = dict(bound_values())
        return super().charge(idempotency_key, amount, reference)


def _envelope(command: TakeDeposit) -> Envelope:
    return delivered(command, command.reservation_id)


def _run_batch(
    url: str, provider: FakePaymentProvider, commands: list[TakeDeposit], keys: list[str]
) -> None:
    """What deliver_batch does for the deposit subscriber: prepare, each handler, commit."""
    ahead = ChargesAhead(provider, max_concurrent=16)
    handle = deposit_handler(provider, ahead)
    envelopes = [_envelope(c) for c in commands]
    scope = BatchScope(envelopes, keys)
    with psycopg.connect(url) as conn, conn.transaction():
        ahead.prepare(conn, scope)
        for envelope, key in zip(envelopes, keys, strict=True):
            message = types.SimpleNamespace(message_id=key)
            handle(HandlerContext(conn, envelope, None, message, scope), envelope)  # type: ignore[arg-type]
        scope.finish(conn)


def _deposits(url: str) -> dict[uuid.UUID, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT reservation_id, status FROM deposit.deposit").fetchall()
    return {r[0]: r[1] for r in rows}


def _paid_events(url: str) -> list[Any]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT payload ->> 'reservation_id' FROM outbox.event WHERE type = %s",
            [DepositPaid.TYPE],
        ).fetchall()
    return sorted(r[0] for r in rows)


def _takes(count: int) -> tuple[list[TakeDeposit], list[str]]:
    commands = [TakeDeposit(uuid.uuid4(), f"guest-{i}", 10_000) for i in range(count)]
    return commands, [str(uuid.uuid4()) for _ in commands]


class TestChargesAhead:
    def test_a_batchs_charges_are_in_flight_together_and_each_is_recorded(
        self, database_url: str
    ) -> None:
        provider = MeetingProvider(together=8)
        commands, keys = _takes(8)

        _run_batch(database_url, provider, commands, keys)

        assert provider.charge_count() == 8
        assert _deposits(database_url) == {c.reservation_id: "PAID" for c in commands}
        assert _paid_events(database_url) == sorted(str(c.reservation_id) for c in commands)

    def test_an_answered_deposit_and_a_second_command_for_one_reservation_charge_nothing(
        self, database_url: str
    ) -> None:
        provider = FakePaymentProvider()
        earlier, earlier_keys = _takes(1)
        _run_batch(database_url, provider, earlier, earlier_keys)
        fresh, fresh_keys = _takes(1)
        again = TakeDeposit(fresh[0].reservation_id, "guest-0", 10_000)

        _run_batch(
            database_url,
            provider,
            [earlier[0], fresh[0], again],
            [str(uuid.uuid4()), fresh_keys[0], str(uuid.uuid4())],
        )

        assert provider.charge_count() == 2  # the earlier one and the fresh one, once each
        assert set(_deposits(database_url)) == {earlier[0].reservation_id, fresh[0].reservation_id}
        assert len(_paid_events(database_url)) == 2

    def test_a_charge_that_fails_fails_the_batch_and_a_retry_is_not_charged_again(
        self, database_url: str
    ) -> None:
        provider = FakePaymentProvider()
        commands, keys = _takes(4)
        provider.lose_next_answers(1)  # one charge takes effect, but its answer is lost

        with pytest.raises(PaymentUnavailable):
            _run_batch(database_url, provider, commands, keys)
        assert _deposits(database_url) == {}
        assert provider.charge_count() == 4  # every charge returned before the batch failed

        _run_batch(database_url, provider, commands, keys)  # the same messages again

        assert provider.charge_count() == 4  # same keys, same charges: none made twice
        assert _deposits(database_url) == {c.reservation_id: "PAID" for c in commands}

    def test_a_charge_on_a_pool_thread_logs_with_its_reservations_correlation_id(
        self, database_url: str
    ) -> None:
        provider = ContextRecordingProvider()
        commands, keys = _takes(3)

        _run_batch(database_url, provider, commands, keys)

        # _envelope makes each command's correlation id its reservation id
        assert {key: ctx["correlation_id"] for key, ctx in provider.contexts.items()} == {
            key: str(c.reservation_id) for key, c in zip(keys, commands, strict=True)
        }
