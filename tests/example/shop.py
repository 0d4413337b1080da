"""A small example domain that exercises the platform the way Dining and Cinema will.

Order saga: OrderPlaced → ReserveStock → StockReserved → ChargePayment → PaymentCharged →
complete. A declined payment fails the saga, which releases the stock (compensation, confirmed
by StockReleased). A stock reservation that does not answer in time trips a deadline.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.messages import Command, Event
from domain.saga import CannotProceed, Compensation, Deadline, Reaction, SagaDefinition, SagaView


@dataclass(frozen=True)
class OrderPlaced(Event):
    TYPE = "shop.OrderPlaced"
    order_id: uuid.UUID
    amount: int
    deadline_ms: int = 60_000

    def stream(self) -> str:
        return f"order-{self.order_id}"


@dataclass(frozen=True)
class ReserveStock(Command):
    TYPE = "stock.ReserveStock"
    order_id: uuid.UUID

    def stream(self) -> str:
        return f"stock-{self.order_id}"


@dataclass(frozen=True)
class StockReserved(Event):
    TYPE = "stock.StockReserved"
    order_id: uuid.UUID

    def stream(self) -> str:
        return f"stock-{self.order_id}"


@dataclass(frozen=True)
class ReleaseStock(Command):
    TYPE = "stock.ReleaseStock"
    order_id: uuid.UUID

    def stream(self) -> str:
        return f"stock-{self.order_id}"


@dataclass(frozen=True)
class StockReleased(Event):
    TYPE = "stock.StockReleased"
    order_id: uuid.UUID

    def stream(self) -> str:
        return f"stock-{self.order_id}"


@dataclass(frozen=True)
class ChargePayment(Command):
    TYPE = "pay.ChargePayment"
    order_id: uuid.UUID
    amount: int

    def stream(self) -> str:
        return f"payment-{self.order_id}"


@dataclass(frozen=True)
class PaymentCharged(Event):
    TYPE = "pay.PaymentCharged"
    order_id: uuid.UUID

    def stream(self) -> str:
        return f"payment-{self.order_id}"


@dataclass(frozen=True)
class PaymentDeclined(Event):
    TYPE = "pay.PaymentDeclined"
    order_id: uuid.UUID
    reason: str

    def stream(self) -> str:
        return f"payment-{self.order_id}"


class OrderSaga(SagaDefinition):
    saga_type = "order"
    starts_with = frozenset({OrderPlaced.TYPE})
    reacts_to = frozenset(
        {StockReserved.TYPE, StockReleased.TYPE, PaymentCharged.TYPE, PaymentDeclined.TYPE}
    )

    def saga_id_for(self, message_type: str, payload: Mapping[str, Any]) -> uuid.UUID | None:
        return uuid.UUID(str(payload["order_id"]))

    def start(self, saga_id: uuid.UUID, message_type: str, payload: Mapping[str, Any]) -> Reaction:
        placed = OrderPlaced.from_payload(payload)
        return Reaction(
            commands=(ReserveStock(placed.order_id),),
            step="reserving_stock",
            data={"amount": placed.amount},
            deadline=Deadline("stock", placed.deadline_ms),
        )

    def react(self, saga: SagaView, message_type: str, payload: Mapping[str, Any]) -> Reaction:
        order_id = saga.saga_id
        if message_type == StockReserved.TYPE:
            if saga.step != "reserving_stock":
                raise CannotProceed(f"stock reserved while {saga.step}")
            return Reaction(
                commands=(ChargePayment(order_id, int(saga.data["amount"])),),
                step="charging",
                finished_step="stock",
                compensation=Compensation(ReleaseStock(order_id), confirmed_by=StockReleased.TYPE),
            )
        if message_type == PaymentCharged.TYPE:
            return Reaction(step="done", outcome="complete")
        if message_type == PaymentDeclined.TYPE:
            return Reaction(step="declined", outcome="fail", reason=str(payload["reason"]))
        return Reaction()
