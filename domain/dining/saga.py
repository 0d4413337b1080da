"""The reservation saga: deposit, then recommendation entry, then seats, then confirmation.

    ReservationRequested ─► TakeDeposit
    DepositPaid ─► RecordDepositPaid + RegisterRecommendationEntry   (undo: RefundDeposit)
    RecommendationEntryRegistered ─► AcceptReservation         (undo: DeleteRecommendationEntry)
    ReservationAccepted ─► ConfirmReservation                        (undo: ReleaseReservation)
    VisitRecorded ─► complete (NO_SHOW: ForfeitDeposit first)

A refusal (deposit failed, entry rejected, no seats) or a passed deadline rejects the
reservation and fails the saga; the runtime then undoes the finished steps in reverse order,
each undo waiting for its confirmation. A customer's cancel fails it the same way, at any step
until the visit: that is why the saga stays open while the reservation is CONFIRMED.

A step that was asked for but had not answered when the saga gave up may still succeed later
(the context was slow or down). Such a late success is undone on arrival (a deposit paid after
the cancel is refunded, late seats are released, a late entry is deleted). A saga's commands
share one stream, and each context handles one stream's messages in order, so an undo never
overtakes the step it undoes.

Waiting on the deposit or the recommendation context has a deadline (10 minutes unless set).
Waiting on the restaurant does not time out quickly: if its context is down, reservations stay
paid and complete when it is back, unless the reserved slot begins first.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from domain.dining.clock import Clock, utc_now
from domain.dining.messages import (
    AcceptReservation,
    ConfirmReservation,
    DeleteRecommendationEntry,
    DepositFailed,
    DepositPaid,
    DepositRefunded,
    ForfeitDeposit,
    RecommendationEntryDeleted,
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
    ReservationReleased,
    ReservationRequested,
    TakeDeposit,
    VisitRecorded,
)
from domain.dining.reservation import VisitOutcome
from domain.dining.restaurant import slot_starts_at
from domain.saga import (
    IGNORE,
    CannotProceed,
    Compensation,
    Deadline,
    Reaction,
    SagaDefinition,
    SagaView,
)

DEFAULT_STEP_DEADLINE_MS = 10 * 60 * 1000
RUNNING = "RUNNING"
TAKING_DEPOSIT = "taking_deposit"
REGISTERING_ENTRY = "registering_recommendation"
AWAITING_RESTAURANT = "awaiting_restaurant"
CONFIRMED = "confirmed"
# Flags in the saga's data: which steps succeeded, so a duplicate is never undone twice.
DEPOSIT_PAID = "deposit_paid"
ENTRY_REGISTERED = "entry_registered"
SEATS_ACCEPTED = "seats_accepted"
REFUND_REASON = "the reservation did not go ahead"
LATE_REFUND_REASON = "paid after the reservation was given up"


class ReservationSaga(SagaDefinition):
    """One instance per reservation (its id is the reservation id)."""

    saga_type = "dining_reservation"
    starts_with = frozenset({ReservationRequested.TYPE})
    reacts_to = frozenset({
        DepositPaid.TYPE, DepositFailed.TYPE, DepositRefunded.TYPE,
        RecommendationEntryRegistered.TYPE, RecommendationEntryRejected.TYPE,
        RecommendationEntryDeleted.TYPE,
        ReservationAccepted.TYPE, ReservationRefused.TYPE, ReservationReleased.TYPE,
        ReservationCancelled.TYPE, VisitRecorded.TYPE,
    })  # fmt: skip

    def __init__(
        self, *, step_deadline_ms: int = DEFAULT_STEP_DEADLINE_MS, clock: Clock = utc_now
    ) -> None:
        if step_deadline_ms <= 0:
            raise ValueError("step_deadline_ms must be positive")
        self.step_deadline_ms = step_deadline_ms
        self.clock = clock
        self._reactions: dict[str, Callable[[SagaView, Mapping[str, Any]], Reaction]] = {
            DepositPaid.TYPE: self._deposit_paid,
            DepositFailed.TYPE: self._refused_while(TAKING_DEPOSIT, "the deposit failed"),
            RecommendationEntryRegistered.TYPE: self._entry_registered,
            RecommendationEntryRejected.TYPE: self._refused_while(
                REGISTERING_ENTRY, "the recommendation entry was rejected"
            ),
            ReservationAccepted.TYPE: self._seats_accepted,
            ReservationRefused.TYPE: self._refused_while(
                AWAITING_RESTAURANT, "the restaurant refused"
            ),
            ReservationCancelled.TYPE: self._cancelled,
            VisitRecorded.TYPE: self._visited,
        }

    def saga_id_for(self, message_type: str, payload: Mapping[str, Any]) -> uuid.UUID | None:
        """Every Dining message carries the reservation id: it names the instance."""
        return uuid.UUID(str(payload["reservation_id"]))

    def start(self, saga_id: uuid.UUID, message_type: str, payload: Mapping[str, Any]) -> Reaction:
        """A requested reservation: take its deposit first."""
        requested = ReservationRequested.from_payload(payload)
        return Reaction(
            commands=(TakeDeposit(saga_id, requested.customer, requested.deposit_amount),),
            step=TAKING_DEPOSIT,
            data={
                "customer": requested.customer,
                "restaurant_id": str(requested.restaurant_id),
                "date": requested.date.isoformat(),
                "slot": requested.slot,
                "party_size": requested.party_size,
            },
            deadline=Deadline("deposit", self.step_deadline_ms),
        )

    def react(self, saga: SagaView, message_type: str, payload: Mapping[str, Any]) -> Reaction:
        """The next step, an undo of a late success, or nothing (see the module docstring)."""
        reaction = self._reactions.get(message_type)
        # Undo confirmations the runtime is not waiting for (late undos) need nothing more.
        return reaction(saga, payload) if reaction else IGNORE

    def on_deadline(self, saga: SagaView, name: str) -> Reaction:
        """A context did not answer in time: reject (and undo what was done)."""
        reason = f"the {name} context did not answer in time"
        return _reject(saga, reason, step="timed_out")

    # -- reactions --------------------------------------------------------------------------

    def _deposit_paid(self, saga: SagaView, payload: Mapping[str, Any]) -> Reaction:
        if saga.data.get(DEPOSIT_PAID):
            return IGNORE
        rid, flag = saga.saga_id, {DEPOSIT_PAID: True}
        if not _waiting(saga, TAKING_DEPOSIT):
            return Reaction(commands=(RefundDeposit(rid, LATE_REFUND_REASON),), data=flag)
        return Reaction(
            commands=(
                RecordDepositPaid(rid),
                RegisterRecommendationEntry(rid, _restaurant(saga), str(saga.data["customer"])),
            ),
            step=REGISTERING_ENTRY,
            data=flag,
            finished_step="deposit",
            compensation=Compensation(
                RefundDeposit(rid, REFUND_REASON), confirmed_by=DepositRefunded.TYPE
            ),
            deadline=Deadline("recommendation", self.step_deadline_ms),
        )

    def _entry_registered(self, saga: SagaView, payload: Mapping[str, Any]) -> Reaction:
        if saga.data.get(ENTRY_REGISTERED):
            return IGNORE
        rid, flag = saga.saga_id, {ENTRY_REGISTERED: True}
        if not _waiting(saga, REGISTERING_ENTRY):
            return Reaction(commands=(DeleteRecommendationEntry(rid),), data=flag)
        accept = AcceptReservation(
            rid,
            _restaurant(saga),
            dt.date.fromisoformat(str(saga.data["date"])),
            str(saga.data["slot"]),
            int(saga.data["party_size"]),
        )
        return Reaction(
            commands=(accept,),
            step=AWAITING_RESTAURANT,
            data=flag,
            finished_step="recommendation",
            compensation=Compensation(
                DeleteRecommendationEntry(rid), confirmed_by=RecommendationEntryDeleted.TYPE
            ),
            deadline=Deadline("restaurant", self._until_slot_begins(accept)),
        )

    def _seats_accepted(self, saga: SagaView, payload: Mapping[str, Any]) -> Reaction:
        if saga.data.get(SEATS_ACCEPTED):
            return IGNORE
        rid, flag = saga.saga_id, {SEATS_ACCEPTED: True}
        release = ReleaseReservation(rid, _restaurant(saga))
        if not _waiting(saga, AWAITING_RESTAURANT):
            return Reaction(commands=(release,), data=flag)
        return Reaction(
            commands=(ConfirmReservation(rid),),
            step=CONFIRMED,
            data=flag,
            finished_step="seats",
            compensation=Compensation(release, confirmed_by=ReservationReleased.TYPE),
        )

    def _refused_while(
        self, step: str, what: str
    ) -> Callable[[SagaView, Mapping[str, Any]], Reaction]:
        def refused(saga: SagaView, payload: Mapping[str, Any]) -> Reaction:
            # A refusal after the saga gave up (or from a duplicate) changes nothing.
            if not _waiting(saga, step):
                return IGNORE
            return _reject(saga, f"{what}: {payload['reason']}", step="rejected")

        return refused

    def _cancelled(self, saga: SagaView, payload: Mapping[str, Any]) -> Reaction:
        if saga.status != RUNNING:
            return IGNORE  # already undoing a rejection; the cancel adds nothing to undo
        return Reaction(step="cancelled", outcome="fail", reason="cancelled by the customer")

    def _visited(self, saga: SagaView, payload: Mapping[str, Any]) -> Reaction:
        if not _waiting(saga, CONFIRMED):
            raise CannotProceed(f"a visit was recorded while the saga is {saga.step}")
        if VisitOutcome(payload["outcome"]) is VisitOutcome.NO_SHOW:
            return Reaction(
                commands=(ForfeitDeposit(saga.saga_id),), step="no_show", outcome="complete"
            )
        return Reaction(step="visited", outcome="complete")

    def _until_slot_begins(self, accept: AcceptReservation) -> int:
        """Milliseconds until the reserved slot begins, but never less than a normal step."""
        remaining = slot_starts_at(accept.date, accept.slot) - self.clock()
        return max(int(remaining.total_seconds() * 1000), self.step_deadline_ms)


def _waiting(saga: SagaView, step: str) -> bool:
    return saga.status == RUNNING and saga.step == step


def _restaurant(saga: SagaView) -> uuid.UUID:
    return uuid.UUID(str(saga.data["restaurant_id"]))


def _reject(saga: SagaView, reason: str, *, step: str) -> Reaction:
    return Reaction(
        commands=(RejectReservation(saga.saga_id, reason),),
        step=step,
        outcome="fail",
        reason=reason,
    )
