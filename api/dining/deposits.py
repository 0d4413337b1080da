"""The deposit context's use cases: take, refund and forfeit a reservation's deposit. Writes
only the ``deposit`` schema; talks to the payment provider through its port.

The provider is called inside the handler's transaction, with ``ctx.idempotency_key`` (the
same for every delivery of one message): a delivery that dies after the provider answered
rolls back, and its redelivery asks again with the same key and gets the same answer instead
of a second charge or refund. The deposit's row records what was done; it is locked before
any refund or forfeit, so one refund happens however many RefundDeposit commands arrive.
``PaymentUnavailable`` propagates: the message is retried later with the same key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
from domain.payments import PaymentProvider
from outbox.consumers import Handler, HandlerContext
from outbox.envelope import Envelope
from sql import query

log = structlog.get_logger("dining.deposit")


class RefundDeclined(Exception):
    """The provider refused to give a paid deposit back: an operator must look at it (the
    message is parked with this reason rather than retried)."""


def take_deposit(ctx: HandlerContext, command: TakeDeposit, provider: PaymentProvider) -> None:
    """Charge the deposit and record the provider's answer: PAID or FAILED."""
    if one(ctx.conn, "dining.lock_deposit", reservation_id=command.reservation_id) is not None:
        return  # answered by an earlier command for this reservation
    result = provider.charge(
        ctx.idempotency_key, command.amount, f"reservation-{command.reservation_id}"
    )
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


def deposit_handler(provider: PaymentProvider) -> Handler:
    """The deposit context's subscriber: TakeDeposit, RefundDeposit and ForfeitDeposit."""
    commands: dict[str, Callable[[HandlerContext, Any], None]] = {
        TakeDeposit.TYPE: lambda ctx, p: take_deposit(ctx, TakeDeposit.from_payload(p), provider),
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
