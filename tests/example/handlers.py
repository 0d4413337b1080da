"""Command handlers of the example's stock and payment contexts (effects in a test table)."""

from __future__ import annotations

import structlog

from outbox.consumers import HandlerContext, Subscriber
from outbox.envelope import Envelope
from outbox.sagas import SagaRunner, to_new_message
from tests.example.shop import (
    ChargePayment,
    OrderSaga,
    PaymentCharged,
    PaymentDeclined,
    ReleaseStock,
    ReserveStock,
    StockReleased,
    StockReserved,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS public.shop_stock (
    order_id uuid PRIMARY KEY,
    reserved boolean NOT NULL,
    changes integer NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS public.shop_ignored_orders (order_id uuid PRIMARY KEY);
"""
PAYMENT_LIMIT = 1000


def stock(ctx: HandlerContext, env: Envelope) -> None:
    if env.type == ReserveStock.TYPE:
        cmd = ReserveStock.from_payload(env.payload)
        ignored = ctx.conn.execute(
            "SELECT 1 FROM public.shop_ignored_orders WHERE order_id = %s", [cmd.order_id]
        ).fetchone()
        if ignored:
            return  # a context that never answers: the saga's deadline must fire
        ctx.conn.execute(
            "INSERT INTO public.shop_stock (order_id, reserved) VALUES (%s, true)"
            " ON CONFLICT (order_id) DO UPDATE SET reserved = true,"
            " changes = shop_stock.changes + 1",
            [cmd.order_id],
        )
        ctx.emit(to_new_message(StockReserved(cmd.order_id)))
    elif env.type == ReleaseStock.TYPE:
        rel = ReleaseStock.from_payload(env.payload)
        ctx.conn.execute(
            "UPDATE public.shop_stock SET reserved = false, changes = changes + 1"
            " WHERE order_id = %s",
            [rel.order_id],
        )
        ctx.emit(to_new_message(StockReleased(rel.order_id)))


def payment(ctx: HandlerContext, env: Envelope) -> None:
    cmd = ChargePayment.from_payload(env.payload)
    structlog.get_logger("shop.payment").info("charging", amount=cmd.amount)
    if cmd.amount > PAYMENT_LIMIT:
        ctx.emit(to_new_message(PaymentDeclined(cmd.order_id, "over the card limit")))
    else:
        ctx.emit(to_new_message(PaymentCharged(cmd.order_id)))


def subscribers() -> list[Subscriber]:
    return [
        SagaRunner(OrderSaga()).subscriber(),
        Subscriber("shop_stock", frozenset({ReserveStock.TYPE, ReleaseStock.TYPE}), stock),
        Subscriber("shop_payment", frozenset({ChargePayment.TYPE}), payment),
    ]
