"""The restaurant, deposit and recommendation aggregates."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from domain.dining.deposit import Deposit, DepositStatus
from domain.dining.errors import IllegalTransition, InvalidRestaurant
from domain.dining.messages import (
    DepositFailed,
    DepositForfeited,
    DepositPaid,
    DepositRefunded,
    RecommendationEntryDeleted,
    RecommendationEntryRegistered,
    RecommendationEntryRejected,
    ReservationReleased,
)
from domain.dining.recommendation import RecommendationEntry
from domain.dining.restaurant import Booking, Restaurant, slot_starts_at


class TestRestaurantRegistration:
    def test_slots_are_sorted_and_the_event_says_everything(self) -> None:
        rid = uuid.uuid4()
        r, event = Restaurant.register(
            rid, "kim", " Mapo Galbi ", "korean", ["19:00", "12:30"], 8, 5000
        )
        assert r.slots == ("12:30", "19:00") == event.slots
        assert (event.owner, event.name, event.capacity_per_slot, event.deposit_amount) == (
            "kim",
            "Mapo Galbi",
            8,
            5000,
        )
        assert r.offers("12:30") and not r.offers("13:00")

    @pytest.mark.parametrize(
        ("slots", "capacity", "deposit", "says"),
        [
            ([], 4, 1000, "1 to 48"),
            (["7:00"], 4, 1000, "HH:MM"),
            (["24:00"], 4, 1000, "HH:MM"),
            (["19:00", "19:00"], 4, 1000, "once"),
            (["19:00"], 0, 1000, "at least one seat"),
            (["19:00"], 4, 0, "above zero"),
        ],
    )
    def test_impossible_offers_are_refused(
        self, slots: list[str], capacity: int, deposit: int, says: str
    ) -> None:
        with pytest.raises(InvalidRestaurant, match=says):
            Restaurant.register(uuid.uuid4(), "kim", "A", "korean", slots, capacity, deposit)

    def test_slots_are_seoul_wall_clock_times(self) -> None:
        starts = slot_starts_at(dt.date(2026, 1, 1), "09:00")
        assert starts == dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.UTC)


class TestBooking:
    def test_released_once(self) -> None:
        b = Booking(uuid.uuid4(), uuid.uuid4(), dt.date(2026, 1, 1), "19:00", 2)
        assert b.release() == ReservationReleased(b.reservation_id, b.restaurant_id)
        with pytest.raises(IllegalTransition):
            b.release()


class TestDeposit:
    def test_paid_then_refunded_once(self) -> None:
        rid = uuid.uuid4()
        d, paid = Deposit.paid(rid, "alice", 10_000, "ch_1")
        assert paid == DepositPaid(rid, 10_000, "ch_1")
        assert d.refunded("rf_1") == DepositRefunded(rid, 10_000)
        assert (d.status, d.refund_reference, d.is_refundable) == (
            DepositStatus.REFUNDED,
            "rf_1",
            False,
        )
        with pytest.raises(IllegalTransition):
            d.refunded("rf_2")
        with pytest.raises(IllegalTransition):
            d.forfeit()

    def test_a_no_show_forfeits_a_paid_deposit(self) -> None:
        d, _ = Deposit.paid(uuid.uuid4(), "alice", 10_000, "ch_1")
        assert d.forfeit() == DepositForfeited(d.reservation_id, 10_000)
        with pytest.raises(IllegalTransition):
            d.refunded("rf")

    def test_a_failed_deposit_has_nothing_to_give_back(self) -> None:
        rid = uuid.uuid4()
        d, failed = Deposit.failed(rid, "alice", 10_000, "ch_1", "card_declined")
        assert failed == DepositFailed(rid, "card_declined")
        assert not d.is_refundable
        with pytest.raises(IllegalTransition):
            d.refunded("rf")


class TestRecommendationEntry:
    def test_registered_then_deleted_once(self) -> None:
        rid, restaurant = uuid.uuid4(), uuid.uuid4()
        entry, event = RecommendationEntry.register(rid, restaurant, "alice", None)
        assert event == RecommendationEntryRegistered(rid, restaurant)
        assert entry is not None
        assert entry.delete() == RecommendationEntryDeleted(rid)
        with pytest.raises(IllegalTransition):
            entry.delete()

    def test_a_suspended_restaurant_gets_no_entry(self) -> None:
        rid = uuid.uuid4()
        entry, event = RecommendationEntry.register(rid, uuid.uuid4(), "alice", "under review")
        assert entry is None
        assert isinstance(event, RecommendationEntryRejected)
        assert "under review" in event.reason
