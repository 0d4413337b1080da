"""Saga definitions are pure: decisions can be tested without any infrastructure."""

from __future__ import annotations

import uuid

import pytest

from domain.saga import CannotProceed, Reaction, SagaView
from tests.example.shop import (
    ChargePayment,
    OrderPlaced,
    OrderSaga,
    PaymentDeclined,
    ReleaseStock,
    ReserveStock,
    StockReserved,
)


class TestOrderSagaDecisions:
    def test_start_reserves_stock_with_a_deadline(self) -> None:
        oid = uuid.uuid4()
        r = OrderSaga().start(oid, OrderPlaced.TYPE, OrderPlaced(oid, 700, 5).payload())
        assert r.commands == (ReserveStock(oid),)
        assert r.deadline is not None and r.deadline.after_ms == 5
        assert r.step == "reserving_stock"

    def test_stock_reserved_charges_and_records_the_release_as_compensation(self) -> None:
        oid = uuid.uuid4()
        view = SagaView(oid, "RUNNING", "reserving_stock", {"amount": 700})
        r = OrderSaga().react(view, StockReserved.TYPE, StockReserved(oid).payload())
        assert r.commands == (ChargePayment(oid, 700),)
        assert r.compensation is not None and r.compensation.command == ReleaseStock(oid)

    def test_declined_payment_fails_with_its_reason(self) -> None:
        oid = uuid.uuid4()
        view = SagaView(oid, "RUNNING", "charging", {"amount": 700})
        r = OrderSaga().react(view, PaymentDeclined.TYPE, PaymentDeclined(oid, "card").payload())
        assert (r.outcome, r.reason) == ("fail", "card")

    def test_out_of_place_message_cannot_proceed(self) -> None:
        oid = uuid.uuid4()
        view = SagaView(oid, "RUNNING", "charging", {"amount": 700})
        with pytest.raises(CannotProceed):
            OrderSaga().react(view, StockReserved.TYPE, StockReserved(oid).payload())


class TestReaction:
    def test_failing_without_a_reason_is_refused(self) -> None:
        with pytest.raises(ValueError, match="reason"):
            Reaction(outcome="fail")


class TestMessagePayloads:
    def test_round_trip_keeps_types(self) -> None:
        placed = OrderPlaced(uuid.uuid4(), 1200, 30)
        assert OrderPlaced.from_payload(placed.payload()) == placed
