"""The reservation aggregate: every transition, and every one it refuses."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from domain.dining.errors import AlreadyRated, IllegalTransition, ReservationNotPossible
from domain.dining.messages import (
    RatingWithdrawn,
    ReservationCancelled,
    ReservationConfirmed,
    ReservationDepositPaid,
    ReservationRated,
    ReservationRejected,
    VisitRecorded,
)
from domain.dining.reservation import (
    BOOKING_HORIZON,
    Reservation,
    ReservationStatus,
    VisitOutcome,
)
from domain.dining.restaurant import Restaurant, slot_starts_at

S = ReservationStatus
DAY = dt.date(2026, 12, 24)
BEFORE = slot_starts_at(DAY, "19:00") - dt.timedelta(days=1)
DURING = slot_starts_at(DAY, "19:00") + dt.timedelta(minutes=5)


def restaurant() -> Restaurant:
    r, _ = Restaurant.register(
        uuid.uuid4(), "owner", "Haengbok BBQ", "korean", ["19:00", "12:00"], 4, 10_000
    )
    return r


def reservation(status: S = S.PENDING) -> Reservation:
    r, _ = Reservation.request(uuid.uuid4(), "alice", restaurant(), DAY, "19:00", 2, BEFORE)
    r.status = status
    return r


class TestRequest:
    def test_a_request_is_pending_and_carries_the_restaurants_deposit(self) -> None:
        place = restaurant()
        rid = uuid.uuid4()
        r, event = Reservation.request(rid, "alice", place, DAY, "12:00", 4, BEFORE)
        assert r.status is S.PENDING
        assert (event.reservation_id, event.restaurant_name, event.deposit_amount) == (
            rid,
            "Haengbok BBQ",
            10_000,
        )
        assert (event.date, event.slot, event.party_size, event.customer) == (
            DAY,
            "12:00",
            4,
            "alice",
        )

    @pytest.mark.parametrize(
        ("slot", "party", "now", "says"),
        [
            ("18:00", 2, BEFORE, "no 18:00 slot"),
            ("19:00", 5, BEFORE, "parties of 1 to 4"),
            ("19:00", 0, BEFORE, "parties of 1 to 4"),
            ("19:00", 2, DURING, "already begun"),
        ],
    )
    def test_what_the_restaurant_does_not_offer_is_not_possible(
        self, slot: str, party: int, now: dt.datetime, says: str
    ) -> None:
        with pytest.raises(ReservationNotPossible, match=says):
            Reservation.request(uuid.uuid4(), "alice", restaurant(), DAY, slot, party, now)

    def test_a_table_is_booked_a_year_ahead_at_most(self) -> None:
        # A deposit is taken at once: not for the year 9999.
        a_year = BOOKING_HORIZON
        just_in = Reservation.request(
            uuid.uuid4(),
            "alice",
            restaurant(),
            DAY,
            "19:00",
            2,
            slot_starts_at(DAY, "19:00") - a_year,
        )
        assert just_in[0].status is ReservationStatus.PENDING
        too_early = slot_starts_at(DAY, "19:00") - a_year - dt.timedelta(minutes=1)
        with pytest.raises(ReservationNotPossible, match="365 days ahead at most"):
            Reservation.request(uuid.uuid4(), "alice", restaurant(), DAY, "19:00", 2, too_early)


class TestSagaTransitions:
    def test_deposit_paid_then_confirmed(self) -> None:
        r = reservation()
        assert r.record_deposit_paid() == ReservationDepositPaid(r.reservation_id)
        assert r.confirm() == ReservationConfirmed(r.reservation_id)
        assert r.status is S.CONFIRMED

    def test_confirming_needs_the_deposit_first(self) -> None:
        with pytest.raises(IllegalTransition):
            reservation().confirm()

    @pytest.mark.parametrize("status", [S.PENDING, S.DEPOSIT_PAID])
    def test_rejection_keeps_its_reason(self, status: S) -> None:
        r = reservation(status)
        assert r.reject("no seats") == ReservationRejected(r.reservation_id, "no seats")
        assert (r.status, r.status_reason, r.is_closed) == (S.REJECTED, "no seats", True)

    @pytest.mark.parametrize("status", [S.CONFIRMED, S.CANCELLED, S.REJECTED])
    def test_a_decided_reservation_cannot_be_rejected(self, status: S) -> None:
        with pytest.raises(IllegalTransition):
            reservation(status).reject("late")


class TestCancel:
    @pytest.mark.parametrize("status", [S.PENDING, S.DEPOSIT_PAID, S.CONFIRMED])
    def test_the_customer_cancels_until_the_slot_begins(self, status: S) -> None:
        r = reservation(status)
        assert r.cancel(BEFORE) == ReservationCancelled(r.reservation_id, "alice")
        assert r.status is S.CANCELLED

    def test_not_once_the_slot_began_or_a_no_show_would_get_the_deposit_back(self) -> None:
        with pytest.raises(IllegalTransition, match="slot has begun"):
            reservation(S.CONFIRMED).cancel(DURING)

    @pytest.mark.parametrize("status", [S.REJECTED, S.CANCELLED, S.COMPLETED, S.NO_SHOW])
    def test_a_closed_reservation_cannot_be_cancelled(self, status: S) -> None:
        with pytest.raises(IllegalTransition, match=f"a {status} reservation"):
            reservation(status).cancel(BEFORE)


class TestVisit:
    @pytest.mark.parametrize("outcome", list(VisitOutcome))
    def test_the_restaurant_records_the_outcome_once_the_slot_began(
        self, outcome: VisitOutcome
    ) -> None:
        r = reservation(S.CONFIRMED)
        event = r.record_visit(outcome, DURING)
        assert event == VisitRecorded(r.reservation_id, r.restaurant_id, outcome.value)
        assert r.status.value == outcome.value

    def test_not_before_the_slot(self) -> None:
        with pytest.raises(IllegalTransition, match="before"):
            reservation(S.CONFIRMED).record_visit(VisitOutcome.NO_SHOW, BEFORE)

    @pytest.mark.parametrize("status", [S.PENDING, S.DEPOSIT_PAID, S.CANCELLED, S.COMPLETED])
    def test_only_a_confirmed_reservation_is_visited(self, status: S) -> None:
        with pytest.raises(IllegalTransition):
            reservation(status).record_visit(VisitOutcome.COMPLETED, DURING)


class TestRating:
    def test_a_completed_visit_is_rated_once(self) -> None:
        r = reservation(S.COMPLETED)
        event = r.rate(5, "맛있어요", BEFORE)
        assert event == ReservationRated(r.reservation_id, r.restaurant_id, "alice", 5, "맛있어요")
        with pytest.raises(AlreadyRated):
            r.rate(4, None, BEFORE)

    def test_a_confirmed_reservation_is_rated_once_its_slot_began(self) -> None:
        r = reservation(S.CONFIRMED)
        with pytest.raises(IllegalTransition, match="visit has begun"):
            r.rate(4, None, BEFORE)
        assert r.rate(4, None, DURING).score == 4

    @pytest.mark.parametrize("status", [S.PENDING, S.DEPOSIT_PAID, S.CANCELLED, S.NO_SHOW])
    def test_nothing_else_is_rated(self, status: S) -> None:
        with pytest.raises(IllegalTransition):
            reservation(status).rate(3, None, DURING)

    def test_a_no_shows_rating_is_withdrawn_and_no_other(self) -> None:
        r = reservation(S.CONFIRMED)
        r.rate(4, None, DURING)
        with pytest.raises(IllegalTransition, match="rated no-show"):
            r.withdraw_rating(4)  # still CONFIRMED
        r.record_visit(VisitOutcome.NO_SHOW, DURING)
        assert r.withdraw_rating(4) == RatingWithdrawn(r.reservation_id, r.restaurant_id, 4)
        unrated = reservation(S.CONFIRMED)
        unrated.record_visit(VisitOutcome.NO_SHOW, DURING)
        with pytest.raises(IllegalTransition):
            unrated.withdraw_rating(4)

    @pytest.mark.parametrize(("score", "comment"), [(0, None), (6, None), (3, "x" * 501)])
    def test_score_and_comment_are_bounded(self, score: int, comment: str | None) -> None:
        with pytest.raises(ReservationNotPossible):
            reservation(S.COMPLETED).rate(score, comment, DURING)
