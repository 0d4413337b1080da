"""The reservation context: one customer's table, from request to visit.

PENDING → DEPOSIT_PAID → CONFIRMED, then COMPLETED or NO_SHOW once the restaurant records the
visit. REJECTED and CANCELLED end a reservation early. Every transition returns the event that
says it happened; a transition the state does not allow raises ``IllegalTransition``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from enum import StrEnum

from domain.dining.errors import AlreadyRated, IllegalTransition, ReservationNotPossible
from domain.dining.messages import (
    RatingWithdrawn,
    ReservationCancelled,
    ReservationConfirmed,
    ReservationDepositPaid,
    ReservationRated,
    ReservationRejected,
    ReservationRequested,
    VisitRecorded,
)
from domain.dining.restaurant import Restaurant, slot_starts_at

MAX_COMMENT_LENGTH = 500
# How far ahead a table can be booked: a deposit is taken at once, so not for any date at all.
BOOKING_HORIZON = dt.timedelta(days=365)


class ReservationStatus(StrEnum):
    PENDING = "PENDING"
    DEPOSIT_PAID = "DEPOSIT_PAID"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    COMPLETED = "COMPLETED"
    NO_SHOW = "NO_SHOW"


class VisitOutcome(StrEnum):
    COMPLETED = "COMPLETED"
    NO_SHOW = "NO_SHOW"


S = ReservationStatus
CLOSED = frozenset({S.REJECTED, S.CANCELLED, S.COMPLETED, S.NO_SHOW})
# What a client waiting on a new reservation waits for: the saga has decided.
SETTLED = CLOSED | {S.CONFIRMED}
CANCELLABLE = frozenset({S.PENDING, S.DEPOSIT_PAID, S.CONFIRMED})
# The statuses the saga's transitions leave from (record_deposit_paid, confirm, reject).
DEPOSIT_PAYABLE = frozenset({S.PENDING})
CONFIRMABLE = frozenset({S.DEPOSIT_PAID})
REJECTABLE = frozenset({S.PENDING, S.DEPOSIT_PAID})
RATEABLE = frozenset({S.CONFIRMED, S.COMPLETED})


@dataclass
class Reservation:
    """One customer's reservation of a slot; ``rated`` once the customer rated it."""

    reservation_id: uuid.UUID
    customer: str
    restaurant_id: uuid.UUID
    restaurant_name: str
    date: dt.date
    slot: str
    party_size: int
    deposit_amount: int
    status: ReservationStatus = S.PENDING
    status_reason: str | None = None
    rated: bool = False

    @classmethod
    def request(
        cls,
        reservation_id: uuid.UUID,
        customer: str,
        restaurant: Restaurant,
        date: dt.date,
        slot: str,
        party_size: int,
        now: dt.datetime,
    ) -> tuple[Reservation, ReservationRequested]:
        """A PENDING reservation for a slot the restaurant offers, in the future and within
        the booking horizon (a deposit is not taken for the year 9999)."""
        if not restaurant.offers(slot):
            raise ReservationNotPossible(
                f"{restaurant.name} has no {slot} slot; it offers {', '.join(restaurant.slots)}"
            )
        if not 1 <= party_size <= restaurant.capacity_per_slot:
            raise ReservationNotPossible(
                f"{restaurant.name} seats parties of 1 to {restaurant.capacity_per_slot}"
            )
        if slot_starts_at(date, slot) <= now:
            raise ReservationNotPossible(f"{date} {slot} has already begun")
        if slot_starts_at(date, slot) > now + BOOKING_HORIZON:
            raise ReservationNotPossible(
                f"reservations open {BOOKING_HORIZON.days} days ahead at most; {date} is later"
            )
        reservation = cls(
            reservation_id,
            customer,
            restaurant.restaurant_id,
            restaurant.name,
            date,
            slot,
            party_size,
            restaurant.deposit_amount,
        )
        event = ReservationRequested(
            reservation_id,
            customer,
            restaurant.restaurant_id,
            restaurant.name,
            date,
            slot,
            party_size,
            restaurant.deposit_amount,
        )
        return reservation, event

    @property
    def is_closed(self) -> bool:
        """Nothing more can happen to it except, perhaps, a rating."""
        return self.status in CLOSED

    def record_deposit_paid(self) -> ReservationDepositPaid:
        """PENDING → DEPOSIT_PAID: the no-show protection is in place."""
        self._move(DEPOSIT_PAYABLE, S.DEPOSIT_PAID)
        return ReservationDepositPaid(self.reservation_id)

    def confirm(self) -> ReservationConfirmed:
        """DEPOSIT_PAID → CONFIRMED: the restaurant holds the seats."""
        self._move(CONFIRMABLE, S.CONFIRMED)
        return ReservationConfirmed(self.reservation_id)

    def reject(self, reason: str) -> ReservationRejected:
        """The saga could not complete it (deposit, recommendation or seats refused)."""
        self._move(REJECTABLE, S.REJECTED)
        self.status_reason = reason
        return ReservationRejected(self.reservation_id, reason)

    def cancel(self, now: dt.datetime) -> ReservationCancelled:
        """The customer calls it off, until the slot begins: after that, a cancel would hand
        the deposit back to a no-show, so the visit (or the saga's deadline) decides."""
        if self.status in CANCELLABLE and now >= self.starts_at:
            raise IllegalTransition("a reservation cannot be cancelled once its slot has begun")
        self._move(CANCELLABLE, S.CANCELLED)
        self.status_reason = "cancelled by the customer"
        return ReservationCancelled(self.reservation_id, self.customer)

    def record_visit(self, outcome: VisitOutcome, now: dt.datetime) -> VisitRecorded:
        """The restaurant says whether the party came; not before the slot has begun."""
        if self.status is S.CONFIRMED and now < self.starts_at:
            raise IllegalTransition(f"the visit cannot be recorded before {self.starts_at}")
        self._move({S.CONFIRMED}, S(outcome.value))
        return VisitRecorded(self.reservation_id, self.restaurant_id, outcome.value)

    def withdraw_rating(self, score: int) -> RatingWithdrawn:
        """A no-show's rating (``score``, given once the slot had begun) stops counting."""
        if self.status is not S.NO_SHOW or not self.rated:
            raise IllegalTransition("a rating is withdrawn from a rated no-show only")
        return RatingWithdrawn(self.reservation_id, self.restaurant_id, score)

    def rate(self, score: int, comment: str | None, now: dt.datetime) -> ReservationRated:
        """The customer rates a visit once: a COMPLETED one, or a CONFIRMED one whose slot has
        begun (the restaurant may never record the visit)."""
        if not 1 <= score <= 5:
            raise ReservationNotPossible("a score is 1 to 5")
        if comment is not None and len(comment) > MAX_COMMENT_LENGTH:
            raise ReservationNotPossible(f"a comment has at most {MAX_COMMENT_LENGTH} characters")
        if self.rated:
            raise AlreadyRated("this reservation is already rated")
        if self.status not in RATEABLE:
            raise IllegalTransition(f"a {self.status} reservation cannot be rated")
        if self.status is S.CONFIRMED and now < self.starts_at:
            raise IllegalTransition("a reservation can be rated once the visit has begun")
        self.rated = True
        return ReservationRated(
            self.reservation_id, self.restaurant_id, self.customer, score, comment
        )

    @property
    def starts_at(self) -> dt.datetime:
        """When the reserved slot begins."""
        return slot_starts_at(self.date, self.slot)

    def _move(self, allowed: set[ReservationStatus] | frozenset[ReservationStatus], to: S) -> None:
        if self.status not in allowed:
            raise IllegalTransition(f"a {self.status} reservation cannot become {to}")
        self.status = to
