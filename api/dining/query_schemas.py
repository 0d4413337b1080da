"""Response shapes of Dining's query side (what customers, owners and clients read).

Statuses are the public contract's words (MISSION.md); a facet nobody has reported on yet is
null rather than guessed (no deposit event yet: ``deposit.status`` is null).
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

import msgspec

from api.dining.schemas import RestaurantView
from domain.dining.deposit import DepositStatus
from domain.dining.reservation import ReservationStatus


class BookingState(StrEnum):
    """What the restaurant said about the reservation's seats."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    RELEASED = "released"


class RecommendationState(StrEnum):
    """Where the reservation's recommendation entry stands."""

    REGISTERED = "registered"
    REJECTED = "rejected"
    DELETED = "deleted"


class DepositState(msgspec.Struct, kw_only=True):
    """A reservation's deposit: requirement 5 ("see the deposit's payment status")."""

    reservation_id: uuid.UUID
    status: DepositStatus | None
    amount: int | None
    reason: str | None = None
    updated_at: dt.datetime | None = None


class ReservationRating(msgspec.Struct, kw_only=True):
    score: int
    comment: str | None
    rated_at: dt.datetime | None


class ReservationState(msgspec.Struct, kw_only=True):
    """One reservation as the customer center shows it, merged from every context."""

    reservation_id: uuid.UUID
    customer: str | None
    restaurant_id: uuid.UUID | None
    restaurant_name: str | None
    date: dt.date | None
    slot: str | None
    party_size: int | None
    status: ReservationStatus | None
    reject_reason: str | None
    deposit: DepositState
    restaurant_booking: BookingState | None
    restaurant_booking_reason: str | None
    recommendation: RecommendationState | None
    rating: ReservationRating | None
    requested_at: dt.datetime | None
    updated_at: dt.datetime
    #: The log position this row reflects (the last event merged into it).
    log_position: int


class ReservationPage(msgspec.Struct, kw_only=True):
    """A page of my reservations, newest first; ``next_offset`` and ``next_after`` are null on
    the last page. Page on with ``after=next_after``: a reservation made meanwhile then does
    not push earlier ones onto the next page again, as it does with ``offset``."""

    items: list[ReservationState]
    limit: int
    offset: int
    next_offset: int | None
    next_after: str | None = None


class TimelineEntry(msgspec.Struct, kw_only=True):
    """One message of a reservation's conversation: an event, or a command between contexts."""

    log_position: int
    reservation_id: uuid.UUID
    kind: str
    type: str
    summary: str
    occurred_at: dt.datetime


class TimelinePage(msgspec.Struct, kw_only=True):
    """Timeline entries in log order; pass ``next_after`` as ``after`` for the next page."""

    items: list[TimelineEntry]
    next_after: int | None


class RestaurantRanking(msgspec.Struct, kw_only=True):
    """A restaurant's place in the recommendations."""

    rank: int
    restaurant_id: uuid.UUID
    name: str | None
    cuisine: str | None
    rating_count: int
    average: float | None
    bayesian_average: float
    active_entries: int


class RecommendationList(msgspec.Struct, kw_only=True):
    """The ranking and the prior it used (``bayesian_average`` = (C*m + sum) / (C + count))."""

    prior_mean: float
    prior_weight: float
    items: list[RestaurantRanking]


class RestaurantPage(msgspec.Struct, kw_only=True):
    """A page of restaurants by name; ``next_offset`` is null on the last page."""

    items: list[RestaurantView]
    limit: int
    offset: int
    next_offset: int | None


class ExpectedReservation(msgspec.Struct, kw_only=True):
    """One reservation as its restaurant's owner sees it: who comes, when, how many."""

    reservation_id: uuid.UUID
    customer: str
    date: dt.date
    slot: str
    party_size: int
    status: ReservationStatus
    status_reason: str | None
    requested_at: dt.datetime


class RestaurantDayPage(msgspec.Struct, kw_only=True):
    """A restaurant's reservations of one day, by slot; ``next_after`` (null on the last page)
    is the ``after`` of the next page."""

    restaurant_id: uuid.UUID
    date: dt.date
    items: list[ExpectedReservation]
    limit: int
    next_after: str | None
