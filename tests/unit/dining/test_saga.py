"""The reservation saga's decisions, walked through every path without infrastructure.

``Walk`` folds reactions the way the runtime documents it (``domain.saga``): commands are
issued, finished steps push their undo, and a failure undoes them newest first.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from domain.dining.messages import (
    AcceptReservation,
    ConfirmReservation,
    DeleteRecommendationEntry,
    DepositFailed,
    DepositPaid,
    DepositRefunded,
    ForfeitDeposit,
    RecommendationEntryRegistered,
    RecommendationEntryRejected,
    RecordDepositPaid,
    RefundDeposit,
    RegisterRecommendationEntry,
    RejectReservation,
    ReleaseReservation,
    ReservationAccepted,
    ReservationCancelled,
    ReservationRefused,
    ReservationRequested,
    TakeDeposit,
    VisitRecorded,
)
from domain.dining.restaurant import slot_starts_at
from domain.dining.saga import LATE_REFUND_REASON, REFUND_REASON, ReservationSaga
from domain.messages import Command, Event
from domain.saga import CannotProceed, Reaction, SagaView

DAY = dt.date(2026, 12, 24)
NOW = slot_starts_at(DAY, "19:00") - dt.timedelta(hours=2)
STEP_MS = 60_000


@dataclass
class Walk:
    saga: ReservationSaga
    view: SagaView
    issued: list[Command] = field(default_factory=list)
    undo: list[Command] = field(default_factory=list)  # the stack, oldest first
    reason: str | None = None

    @classmethod
    def start(cls, requested: ReservationRequested) -> Walk:
        saga = ReservationSaga(step_deadline_ms=STEP_MS, clock=lambda: NOW)
        rid = requested.reservation_id
        walk = cls(saga, SagaView(rid, "RUNNING", "started", {}))
        walk.apply(saga.start(rid, requested.TYPE, requested.payload()))
        return walk

    def on(self, event: Event) -> Reaction:
        return self.apply(self.saga.react(self.view, event.TYPE, event.payload()))

    def deadline(self, name: str) -> Reaction:
        return self.apply(self.saga.on_deadline(self.view, name))

    def apply(self, r: Reaction) -> Reaction:
        self.issued += r.commands
        status = self.view.status
        if r.compensation is not None:
            self.undo.append(r.compensation.command)
        if r.outcome == "fail" and status == "RUNNING":
            status, self.reason = "COMPENSATED", r.reason
        elif r.outcome == "complete" and status == "RUNNING":
            status = "COMPLETED"
        data: dict[str, Any] = {**self.view.data, **r.data}
        self.view = SagaView(self.view.saga_id, status, r.step or self.view.step, data)
        return r

    @property
    def undone_newest_first(self) -> list[Command]:
        return list(reversed(self.undo)) if self.view.status == "COMPENSATED" else []


def requested() -> ReservationRequested:
    return ReservationRequested(
        uuid.uuid4(), "alice", uuid.uuid4(), "Haengbok BBQ", DAY, "19:00", 2, 10_000
    )


def at_step(step: str) -> tuple[Walk, ReservationRequested]:
    """A walk that got as far as ``step`` (each step's success, in order)."""
    req = requested()
    walk, rid = Walk.start(req), req.reservation_id
    if step == "taking_deposit":
        return walk, req
    walk.on(DepositPaid(rid, 10_000, "ch_1"))
    if step == "registering_recommendation":
        return walk, req
    walk.on(RecommendationEntryRegistered(rid, req.restaurant_id))
    if step == "awaiting_restaurant":
        return walk, req
    walk.on(ReservationAccepted(rid, req.restaurant_id))
    assert step == "confirmed"
    return walk, req


class TestHappyPath:
    def test_deposit_then_entry_then_seats_then_confirmation(self) -> None:
        walk, req = at_step("confirmed")
        rid = req.reservation_id
        assert walk.issued == [
            TakeDeposit(rid, "alice", 10_000),
            RecordDepositPaid(rid),
            RegisterRecommendationEntry(rid, req.restaurant_id, "alice"),
            AcceptReservation(rid, req.restaurant_id, DAY, "19:00", 2),
            ConfirmReservation(rid),
        ]
        assert (walk.view.status, walk.view.step) == ("RUNNING", "confirmed")

    @pytest.mark.parametrize(("outcome", "forfeit"), [("COMPLETED", False), ("NO_SHOW", True)])
    def test_the_visit_completes_it_and_a_no_show_forfeits(
        self, outcome: str, forfeit: bool
    ) -> None:
        walk, req = at_step("confirmed")
        r = walk.on(VisitRecorded(req.reservation_id, req.restaurant_id, outcome))
        assert walk.view.status == "COMPLETED"
        assert r.commands == ((ForfeitDeposit(req.reservation_id),) if forfeit else ())

    def test_a_visit_out_of_turn_parks_the_saga(self) -> None:
        walk, req = at_step("awaiting_restaurant")
        with pytest.raises(CannotProceed):
            walk.on(VisitRecorded(req.reservation_id, req.restaurant_id, "NO_SHOW"))


class TestDeadlines:
    def test_deposit_and_entry_wait_one_step_deadline(self) -> None:
        walk, req = at_step("taking_deposit")
        first = walk.saga.start(req.reservation_id, req.TYPE, req.payload())
        assert first.deadline is not None and first.deadline.after_ms == STEP_MS
        paid = walk.saga.react(
            walk.view, DepositPaid.TYPE, DepositPaid(req.reservation_id, 1, "c").payload()
        )
        assert paid.deadline is not None and paid.deadline.after_ms == STEP_MS

    def test_the_restaurant_has_until_the_slot_begins(self) -> None:
        walk, req = at_step("registering_recommendation")
        r = walk.on(RecommendationEntryRegistered(req.reservation_id, req.restaurant_id))
        assert r.deadline is not None and r.deadline.after_ms == 2 * 3600 * 1000

    def test_but_never_less_than_a_step(self) -> None:
        walk, req = at_step("registering_recommendation")
        walk.saga.clock = lambda: slot_starts_at(DAY, "19:00") + dt.timedelta(hours=1)
        r = walk.on(RecommendationEntryRegistered(req.reservation_id, req.restaurant_id))
        assert r.deadline is not None and r.deadline.after_ms == STEP_MS

    def test_a_passed_deadline_rejects_and_refunds_what_was_paid(self) -> None:
        walk, req = at_step("registering_recommendation")
        r = walk.deadline("recommendation")
        assert r.commands == (
            RejectReservation(
                req.reservation_id, "the recommendation context did not answer in time"
            ),
        )
        assert walk.undone_newest_first == [RefundDeposit(req.reservation_id, REFUND_REASON)]


class TestRefusals:
    def test_a_failed_deposit_rejects_with_nothing_to_undo(self) -> None:
        walk, req = at_step("taking_deposit")
        r = walk.on(DepositFailed(req.reservation_id, "card_declined"))
        assert r.commands == (
            RejectReservation(req.reservation_id, "the deposit failed: card_declined"),
        )
        assert walk.view.status == "COMPENSATED" and walk.undone_newest_first == []

    def test_a_rejected_entry_refunds_and_rejects(self) -> None:
        walk, req = at_step("registering_recommendation")
        r = walk.on(RecommendationEntryRejected(req.reservation_id, "suspended"))
        assert r.commands[0] == RejectReservation(
            req.reservation_id, "the recommendation entry was rejected: suspended"
        )
        assert walk.undone_newest_first == [RefundDeposit(req.reservation_id, REFUND_REASON)]

    def test_no_seats_deletes_the_entry_then_refunds_and_rejects(self) -> None:
        walk, req = at_step("awaiting_restaurant")
        rid = req.reservation_id
        r = walk.on(ReservationRefused(rid, req.restaurant_id, "full"))
        assert r.commands == (RejectReservation(rid, "the restaurant refused: full"),)
        assert walk.undone_newest_first == [
            DeleteRecommendationEntry(rid),
            RefundDeposit(rid, REFUND_REASON),
        ]

    def test_a_refusal_after_the_saga_gave_up_changes_nothing(self) -> None:
        walk, req = at_step("awaiting_restaurant")
        walk.on(ReservationCancelled(req.reservation_id, "alice"))
        assert (
            walk.on(ReservationRefused(req.reservation_id, req.restaurant_id, "full")) == Reaction()
        )


class TestCancel:
    @pytest.mark.parametrize(
        ("step", "undo"),
        [
            ("taking_deposit", []),
            ("registering_recommendation", ["RefundDeposit"]),
            ("awaiting_restaurant", ["DeleteRecommendationEntry", "RefundDeposit"]),
            ("confirmed", ["ReleaseReservation", "DeleteRecommendationEntry", "RefundDeposit"]),
        ],
    )
    def test_a_cancel_undoes_every_finished_step_newest_first(
        self, step: str, undo: list[str]
    ) -> None:
        walk, req = at_step(step)
        r = walk.on(ReservationCancelled(req.reservation_id, "alice"))
        assert r.commands == ()  # the reservation is already CANCELLED: nothing to reject
        assert walk.reason == "cancelled by the customer"
        assert [type(c).__name__ for c in walk.undone_newest_first] == undo

    def test_a_cancel_while_undoing_a_rejection_adds_nothing(self) -> None:
        walk, req = at_step("awaiting_restaurant")
        walk.on(ReservationRefused(req.reservation_id, req.restaurant_id, "full"))
        assert walk.on(ReservationCancelled(req.reservation_id, "alice")) == Reaction()


class TestLateSuccess:
    def test_a_deposit_paid_after_the_cancel_is_refunded_once(self) -> None:
        walk, req = at_step("taking_deposit")
        rid = req.reservation_id
        walk.on(ReservationCancelled(rid, "alice"))
        r = walk.on(DepositPaid(rid, 10_000, "ch_1"))
        assert r.commands == (RefundDeposit(rid, LATE_REFUND_REASON),)
        assert walk.on(DepositPaid(rid, 10_000, "ch_1")) == Reaction()

    def test_a_deposit_paid_after_the_deadline_is_refunded(self) -> None:
        walk, req = at_step("taking_deposit")
        walk.deadline("deposit")
        r = walk.on(DepositPaid(req.reservation_id, 10_000, "ch_1"))
        assert r.commands == (RefundDeposit(req.reservation_id, LATE_REFUND_REASON),)

    def test_a_late_entry_is_deleted(self) -> None:
        walk, req = at_step("registering_recommendation")
        walk.on(ReservationCancelled(req.reservation_id, "alice"))
        r = walk.on(RecommendationEntryRegistered(req.reservation_id, req.restaurant_id))
        assert r.commands == (DeleteRecommendationEntry(req.reservation_id),)

    def test_late_seats_are_released(self) -> None:
        walk, req = at_step("awaiting_restaurant")
        walk.on(ReservationCancelled(req.reservation_id, "alice"))
        r = walk.on(ReservationAccepted(req.reservation_id, req.restaurant_id))
        assert r.commands == (ReleaseReservation(req.reservation_id, req.restaurant_id),)

    def test_a_duplicate_success_is_not_undone(self) -> None:
        walk, req = at_step("confirmed")
        rid = req.reservation_id
        assert walk.on(DepositPaid(rid, 10_000, "ch_1")) == Reaction()
        assert walk.on(RecommendationEntryRegistered(rid, req.restaurant_id)) == Reaction()
        assert walk.on(ReservationAccepted(rid, req.restaurant_id)) == Reaction()
        assert walk.view.status == "RUNNING"

    def test_undo_confirmations_nobody_waits_for_are_ignored(self) -> None:
        walk, req = at_step("taking_deposit")
        walk.on(ReservationCancelled(req.reservation_id, "alice"))
        walk.on(DepositPaid(req.reservation_id, 10_000, "ch_1"))
        assert walk.on(DepositRefunded(req.reservation_id, 10_000)) == Reaction()


class TestIdentity:
    def test_the_saga_is_the_reservation(self) -> None:
        rid = uuid.uuid4()
        saga = ReservationSaga()
        payload = DepositPaid(rid, 1, "c").payload()
        assert saga.saga_id_for(DepositPaid.TYPE, payload) == rid

    def test_a_deadline_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            ReservationSaga(step_deadline_ms=0)
