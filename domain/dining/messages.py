"""The Dining contract: every event and command the contexts exchange through the log.

Streams: ``restaurant-<id>``, ``reservation-<id>``, ``deposit-<reservation id>``,
``recommendation-<reservation id>`` and ``booking-<reservation id>`` for the restaurant's
answer about one reservation. Booking messages are not on ``restaurant-<id>`` on purpose: a
stream is a FIFO group, and one busy restaurant must not queue every reservation behind one
another (slot capacity is enforced by a database constraint instead).
Amounts are whole KRW (integers). Dates are ISO dates; slots are "HH:MM" strings.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from domain.messages import Command, Event

# -- restaurant ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestaurantRegistered(Event):
    TYPE = "restaurant.RestaurantRegistered"
    restaurant_id: uuid.UUID
    owner: str
    name: str
    cuisine: str
    slots: tuple[str, ...]
    capacity_per_slot: int
    deposit_amount: int

    def stream(self) -> str:
        return f"restaurant-{self.restaurant_id}"


@dataclass(frozen=True)
class AcceptReservation(Command):
    """Reserve ``party_size`` seats of the slot, if it still has them."""

    TYPE = "restaurant.AcceptReservation"
    reservation_id: uuid.UUID
    restaurant_id: uuid.UUID
    date: dt.date
    slot: str
    party_size: int

    def stream(self) -> str:
        return f"booking-{self.reservation_id}"


@dataclass(frozen=True)
class ReservationAccepted(Event):
    TYPE = "restaurant.ReservationAccepted"
    reservation_id: uuid.UUID
    restaurant_id: uuid.UUID

    def stream(self) -> str:
        return f"booking-{self.reservation_id}"


@dataclass(frozen=True)
class ReservationRefused(Event):
    TYPE = "restaurant.ReservationRefused"
    reservation_id: uuid.UUID
    restaurant_id: uuid.UUID
    reason: str

    def stream(self) -> str:
        return f"booking-{self.reservation_id}"


@dataclass(frozen=True)
class ReleaseReservation(Command):
    """Give the seats back (cancel, or compensation); idempotent."""

    TYPE = "restaurant.ReleaseReservation"
    reservation_id: uuid.UUID
    restaurant_id: uuid.UUID

    def stream(self) -> str:
        return f"booking-{self.reservation_id}"


@dataclass(frozen=True)
class ReservationReleased(Event):
    TYPE = "restaurant.ReservationReleased"
    reservation_id: uuid.UUID
    restaurant_id: uuid.UUID

    def stream(self) -> str:
        return f"booking-{self.reservation_id}"


# -- reservation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReservationRequested(Event):
    """A customer asked for a table; the reservation is PENDING."""

    TYPE = "reservation.ReservationRequested"
    reservation_id: uuid.UUID
    customer: str
    restaurant_id: uuid.UUID
    restaurant_name: str
    date: dt.date
    slot: str
    party_size: int
    deposit_amount: int

    def stream(self) -> str:
        return f"reservation-{self.reservation_id}"


@dataclass(frozen=True)
class RecordDepositPaid(Command):
    TYPE = "reservation.RecordDepositPaid"
    reservation_id: uuid.UUID

    def stream(self) -> str:
        return f"reservation-{self.reservation_id}"


@dataclass(frozen=True)
class ReservationDepositPaid(Event):
    """PENDING → DEPOSIT_PAID."""

    TYPE = "reservation.ReservationDepositPaid"
    reservation_id: uuid.UUID

    def stream(self) -> str:
        return f"reservation-{self.reservation_id}"


@dataclass(frozen=True)
class ConfirmReservation(Command):
    TYPE = "reservation.ConfirmReservation"
    reservation_id: uuid.UUID

    def stream(self) -> str:
        return f"reservation-{self.reservation_id}"


@dataclass(frozen=True)
class ReservationConfirmed(Event):
    """DEPOSIT_PAID → CONFIRMED."""

    TYPE = "reservation.ReservationConfirmed"
    reservation_id: uuid.UUID

    def stream(self) -> str:
        return f"reservation-{self.reservation_id}"


@dataclass(frozen=True)
class RejectReservation(Command):
    TYPE = "reservation.RejectReservation"
    reservation_id: uuid.UUID
    reason: str

    def stream(self) -> str:
        return f"reservation-{self.reservation_id}"


@dataclass(frozen=True)
class ReservationRejected(Event):
    TYPE = "reservation.ReservationRejected"
    reservation_id: uuid.UUID
    reason: str

    def stream(self) -> str:
        return f"reservation-{self.reservation_id}"


@dataclass(frozen=True)
class ReservationCancelled(Event):
    """The customer cancelled (from PENDING, DEPOSIT_PAID or CONFIRMED)."""

    TYPE = "reservation.ReservationCancelled"
    reservation_id: uuid.UUID
    customer: str

    def stream(self) -> str:
        return f"reservation-{self.reservation_id}"


@dataclass(frozen=True)
class VisitRecorded(Event):
    """The restaurant marked the visit: outcome COMPLETED or NO_SHOW."""

    TYPE = "reservation.VisitRecorded"
    reservation_id: uuid.UUID
    restaurant_id: uuid.UUID
    outcome: str

    def stream(self) -> str:
        return f"reservation-{self.reservation_id}"


@dataclass(frozen=True)
class ReservationRated(Event):
    TYPE = "reservation.ReservationRated"
    reservation_id: uuid.UUID
    restaurant_id: uuid.UUID
    customer: str
    score: int
    comment: str | None

    def stream(self) -> str:
        return f"reservation-{self.reservation_id}"


@dataclass(frozen=True)
class RatingWithdrawn(Event):
    """A rated reservation was then marked a no-show: its rating no longer counts for the
    restaurant (the party never came)."""

    TYPE = "reservation.RatingWithdrawn"
    reservation_id: uuid.UUID
    restaurant_id: uuid.UUID
    score: int

    def stream(self) -> str:
        return f"reservation-{self.reservation_id}"


# -- deposit ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TakeDeposit(Command):
    TYPE = "deposit.TakeDeposit"
    reservation_id: uuid.UUID
    customer: str
    amount: int

    def stream(self) -> str:
        return f"deposit-{self.reservation_id}"


@dataclass(frozen=True)
class DepositPaid(Event):
    TYPE = "deposit.DepositPaid"
    reservation_id: uuid.UUID
    amount: int
    provider_reference: str

    def stream(self) -> str:
        return f"deposit-{self.reservation_id}"


@dataclass(frozen=True)
class DepositFailed(Event):
    TYPE = "deposit.DepositFailed"
    reservation_id: uuid.UUID
    reason: str

    def stream(self) -> str:
        return f"deposit-{self.reservation_id}"


@dataclass(frozen=True)
class RefundDeposit(Command):
    """Refund a paid deposit; refunding twice refunds once."""

    TYPE = "deposit.RefundDeposit"
    reservation_id: uuid.UUID
    reason: str

    def stream(self) -> str:
        return f"deposit-{self.reservation_id}"


@dataclass(frozen=True)
class DepositRefunded(Event):
    TYPE = "deposit.DepositRefunded"
    reservation_id: uuid.UUID
    amount: int

    def stream(self) -> str:
        return f"deposit-{self.reservation_id}"


@dataclass(frozen=True)
class ForfeitDeposit(Command):
    TYPE = "deposit.ForfeitDeposit"
    reservation_id: uuid.UUID

    def stream(self) -> str:
        return f"deposit-{self.reservation_id}"


@dataclass(frozen=True)
class DepositForfeited(Event):
    TYPE = "deposit.DepositForfeited"
    reservation_id: uuid.UUID
    amount: int

    def stream(self) -> str:
        return f"deposit-{self.reservation_id}"


# -- recommendation --------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterRecommendationEntry(Command):
    TYPE = "recommendation.RegisterRecommendationEntry"
    reservation_id: uuid.UUID
    restaurant_id: uuid.UUID
    customer: str

    def stream(self) -> str:
        return f"recommendation-{self.reservation_id}"


@dataclass(frozen=True)
class RecommendationEntryRegistered(Event):
    TYPE = "recommendation.RecommendationEntryRegistered"
    reservation_id: uuid.UUID
    restaurant_id: uuid.UUID

    def stream(self) -> str:
        return f"recommendation-{self.reservation_id}"


@dataclass(frozen=True)
class RecommendationEntryRejected(Event):
    TYPE = "recommendation.RecommendationEntryRejected"
    reservation_id: uuid.UUID
    reason: str

    def stream(self) -> str:
        return f"recommendation-{self.reservation_id}"


@dataclass(frozen=True)
class DeleteRecommendationEntry(Command):
    TYPE = "recommendation.DeleteRecommendationEntry"
    reservation_id: uuid.UUID

    def stream(self) -> str:
        return f"recommendation-{self.reservation_id}"


@dataclass(frozen=True)
class RecommendationEntryDeleted(Event):
    TYPE = "recommendation.RecommendationEntryDeleted"
    reservation_id: uuid.UUID

    def stream(self) -> str:
        return f"recommendation-{self.reservation_id}"
