"""The deposit context's use cases: take, refund and forfeit a reservation's deposit. Writes
only the ``deposit`` schema; talks to the payment provider through its port.

The provider is called inside the delivery's transaction, with ``ctx.idempotency_key`` (the
same for every delivery of one message): a delivery that dies after the provider answered
rolls back, and its redelivery asks again with the same key and gets the same answer instead
of a second charge or refund. A batch's charges are made together before its handlers run
(``ChargesAhead``), each with its own message's key. The deposit's row records what was
done; it is locked before any refund or forfeit, so one refund happens however many
RefundDeposit commands arrive.
``PaymentUnavailable`` propagates: the message is retried later with the same key.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import psycopg
import structlog

from api.dining.rows import deposit_from_row
from api.dining.storage import emit, one
from domain.dining.deposit import Deposit
from domain.dining.messages import (
    DepositFailed,
    DepositPaid,
    ForfeitDeposit,
    RefundDeposit,
    TakeDeposit,
)
from domain.payments import ChargeResult, PaymentProvider
from outbox.consumers import BatchScope, Handler, HandlerContext
from outbox.envelope import Envelope
from outbox.logcontext import bound
from sql import query

log = structlog.get_logger("dining.deposit")


class RefundDeclined(Exception):
    """The provider refused to give a paid deposit back: an operator must look at it (the
    message is parked with this reason rather than retried)."""


def charge_deposit(provider: PaymentProvider, key: str, command: TakeDeposit) -> ChargeResult:
    """The provider call for a TakeDeposit, alone or ahead of its batch: the same key and
    description either way, so a redelivery asks the provider the same question."""
    return provider.charge(key, command.amount, f"reservation-{command.reservation_id}")


class ChargesAhead:
    """The charges a batch of deposit commands needs, made before its handlers run and all at
    once (a thread per charge, up to ``max_concurrent``), so a batch waits for its slowest
    charge rather than for the sum of them.

    ``prepare`` locks the deposits of the batch's TakeDeposit messages in one statement and
    charges those not answered yet, each with its own message's idempotency key, as the
    handler would; ``take_deposit`` then uses the answer. A charge that raises (provider down,
    breaker open, a protocol error) fails the whole batch after every charge has returned:
    its messages are then delivered alone, and each charge asked again with the same key
    gets the same answer from the provider, not a second charge.
    """

    def __init__(self, provider: PaymentProvider, max_concurrent: int) -> None:
        self._provider = provider
        self._max_concurrent = max(1, max_concurrent)
        self._threads: ThreadPoolExecutor | None = None
        self._threads_lock = threading.Lock()

    def prepare(self, conn: psycopg.Connection[Any], scope: BatchScope) -> None:
        takes = [
            (key, TakeDeposit.from_payload(env.payload), env.correlation_id)
            for env, key in zip(scope.envelopes, scope.idempotency_keys, strict=True)
            if env.type == TakeDeposit.TYPE
        ]
        if not takes:
            return
        ids = sorted({command.reservation_id for _, command, _ in takes})
        locked = conn.execute(query("dining.lock_deposits"), {"reservation_ids": ids})
        answered = {row[0] for row in locked.fetchall()}
        due: list[tuple[str, TakeDeposit, uuid.UUID]] = []
        for key, command, correlation_id in takes:  # one charge per reservation: a second
            if command.reservation_id not in answered:  # command finds the first one's row
                answered.add(command.reservation_id)
                due.append((key, command, correlation_id))
        futures = [(job[0], self._pool().submit(self._charge, *job)) for job in due]
        wait([future for _, future in futures])  # none left running if one of them failed
        charges = {key: future.result() for key, future in futures}  # raises the first error
        scope.state[self] = charges

    def _charge(self, key: str, command: TakeDeposit, correlation_id: uuid.UUID) -> ChargeResult:
        # On a pool thread: the log lines of the call (breaker, client) carry its correlation.
        with bound(correlation_id=str(correlation_id), reservation_id=str(command.reservation_id)):
            return charge_deposit(self._provider, key, command)

    def _pool(self) -> ThreadPoolExecutor:
        with self._threads_lock:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(
                    self._max_concurrent, thread_name_prefix="deposit-charge"
                )
            return self._threads


def take_deposit(
    ctx: HandlerContext,
    command: TakeDeposit,
    provider: PaymentProvider,
    ahead: ChargesAhead | None = None,
) -> None:
    """Charge the deposit and record the provider's answer: PAID or FAILED. In a batch that
    ``ahead`` prepared, the charge was made already, unless the deposit was answered before
    (then nothing is charged, and the row it finds says so)."""
    charged: dict[str, ChargeResult] = {}
    if ahead is not None and ctx.batch is not None:
        charged = ctx.batch.state.get(ahead, {})
    result = charged.get(ctx.idempotency_key)
    if result is None:
        if one(ctx.conn, "dining.lock_deposit", reservation_id=command.reservation_id):
            return  # answered by an earlier command for this reservation
        result = charge_deposit(provider, ctx.idempotency_key, command)
    deposit: Deposit
    event: DepositPaid | DepositFailed
    if result.approved:
        deposit, event = Deposit.paid(
            command.reservation_id, command.customer, command.amount, result.reference
        )
    else:
        deposit, event = Deposit.failed(
            command.reservation_id,
            command.customer,
            command.amount,
            result.reference,
            result.reason or "declined",
        )
    ctx.conn.execute(
        query("dining.insert_deposit"),
        {
            "reservation_id": deposit.reservation_id,
            "customer": deposit.customer,
            "amount": deposit.amount,
            "status": deposit.status.value,
            "charge_reference": deposit.charge_reference,
            "failure_reason": deposit.failure_reason,
        },
    )
    emit(ctx, event)


def refund_deposit(ctx: HandlerContext, command: RefundDeposit, provider: PaymentProvider) -> None:
    """Give a paid deposit back, once; anything else (failed, refunded, forfeited) stays."""
    deposit = _locked(ctx, command.reservation_id, "refund")
    if deposit is None or not deposit.is_refundable:
        return
    result = provider.refund(ctx.idempotency_key, deposit.charge_reference, deposit.amount)
    if not result.approved:
        raise RefundDeclined(f"refund of {deposit.reservation_id} declined: {result.reason}")
    event = deposit.refunded(result.reference)
    _save(ctx, deposit)
    log.info("deposit_refunded", amount=deposit.amount, reason=command.reason)
    emit(ctx, event)


def forfeit_deposit(ctx: HandlerContext, command: ForfeitDeposit) -> None:
    """The party did not come: the restaurant keeps the paid deposit."""
    deposit = _locked(ctx, command.reservation_id, "forfeit")
    if deposit is None or not deposit.is_refundable:
        return
    event = deposit.forfeit()
    _save(ctx, deposit)
    emit(ctx, event)


def deposit_handler(provider: PaymentProvider, ahead: ChargesAhead | None = None) -> Handler:
    """The deposit context's subscriber: TakeDeposit, RefundDeposit and ForfeitDeposit. With
    ``ahead``, a batch's charges are made by its ``prepare`` (see ``ChargesAhead``)."""
    commands: dict[str, Callable[[HandlerContext, Any], None]] = {
        TakeDeposit.TYPE: lambda ctx, p: take_deposit(
            ctx, TakeDeposit.from_payload(p), provider, ahead
        ),
        RefundDeposit.TYPE: lambda ctx, p: refund_deposit(
            ctx, RefundDeposit.from_payload(p), provider
        ),
        ForfeitDeposit.TYPE: lambda ctx, p: forfeit_deposit(ctx, ForfeitDeposit.from_payload(p)),
    }

    def handle(ctx: HandlerContext, env: Envelope) -> None:
        command = commands.get(env.type)
        if command is not None:
            command(ctx, env.payload)

    return handle


def _locked(ctx: HandlerContext, reservation_id: Any, action: str) -> Deposit | None:
    row = one(ctx.conn, "dining.lock_deposit", reservation_id=reservation_id)
    deposit = None if row is None else deposit_from_row(row)
    if deposit is None or not deposit.is_refundable:
        status = "unknown" if deposit is None else deposit.status.value
        log.info("nothing_to_" + action, reservation_id=str(reservation_id), status=status)
    return deposit


def _save(ctx: HandlerContext, deposit: Deposit) -> None:
    ctx.conn.execute(
        query("dining.save_deposit"),
        {
            "reservation_id": deposit.reservation_id,
            "status": deposit.status.value,
            "refund_reference": deposit.refund_reference,
        },
    )
