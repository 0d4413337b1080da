"""Dining's wire shapes for commands: what clients send and the resources a 202 carries."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec

from api.schemas import Command
from domain.dining.reservation import MAX_COMMENT_LENGTH, Reservation
from domain.dining.restaurant import MAX_SLOTS, SLOT_PATTERN, Restaurant

Slot = Annotated[str, msgspec.Meta(pattern=SLOT_PATTERN, examples=["19:00"])]
# Names shown to other people hold no control characters and no bidirectional overrides
# (U+202A-U+202E, U+2066-U+2069), which can make a name display as something it is not.
_NAME_PATTERN = "^[^\\x00-\\x1f\\x7f\\u202a-\\u202e\\u2066-\\u2069]*$"
# A comment may break lines (and tab); the rest as for names.
_COMMENT_PATTERN = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f\\u202a-\\u202e\\u2066-\\u2069]*$"
Krw = Annotated[int, msgspec.Meta(gt=0, le=10_000_000, description="Whole KRW")]


class RestaurantCreate(Command):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=_NAME_PATTERN)]
    cuisine: Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=_NAME_PATTERN)]
    slots: Annotated[list[Slot], msgspec.Meta(min_length=1, max_length=MAX_SLOTS)]
    capacity_per_slot: Annotated[int, msgspec.Meta(ge=1, le=1000, description="Seats per slot")]
    deposit_amount: Krw
    owner: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=200,
                pattern=_NAME_PATTERN,
                description="Only when an admin (ops) registers it for an owner: the owner's "
                "subject. An owner registers their own restaurants and leaves it out.",
            ),
        ]
        | None
    ) = None


class RestaurantView(msgspec.Struct, kw_only=True):
    restaurant_id: uuid.UUID
    owner: str
    name: str
    cuisine: str
    slots: list[str]
    capacity_per_slot: int
    deposit_amount: int
    log_position: int | None = None

    @classmethod
    def of(cls, restaurant: Restaurant) -> RestaurantView:
        return cls(
            restaurant_id=restaurant.restaurant_id,
            owner=restaurant.owner,
            name=restaurant.name,
            cuisine=restaurant.cuisine,
            slots=list(restaurant.slots),
            capacity_per_slot=restaurant.capacity_per_slot,
            deposit_amount=restaurant.deposit_amount,
        )


class ReservationCreate(Command):
    restaurant_id: uuid.UUID
    date: dt.date
    slot: Slot
    party_size: Annotated[int, msgspec.Meta(ge=1, le=1000)]


class ReservationView(msgspec.Struct, kw_only=True):
    """A reservation as its customer sees it on the write side (the 202 and a settled wait)."""

    reservation_id: uuid.UUID
    customer: str
    restaurant_id: uuid.UUID
    restaurant_name: str
    date: dt.date
    slot: str
    party_size: int
    deposit_amount: int
    status: str
    status_reason: str | None
    log_position: int | None = None

    @classmethod
    def of(cls, r: Reservation) -> ReservationView:
        return cls(
            reservation_id=r.reservation_id,
            customer=r.customer,
            restaurant_id=r.restaurant_id,
            restaurant_name=r.restaurant_name,
            date=r.date,
            slot=r.slot,
            party_size=r.party_size,
            deposit_amount=r.deposit_amount,
            status=r.status.value,
            status_reason=r.status_reason,
        )


class VisitCreate(Command):
    outcome: Literal["COMPLETED", "NO_SHOW"]


class RatingCreate(Command):
    score: Annotated[int, msgspec.Meta(ge=1, le=5)]
    comment: (
        Annotated[str, msgspec.Meta(max_length=MAX_COMMENT_LENGTH, pattern=_COMMENT_PATTERN)] | None
    ) = None


class RatingView(msgspec.Struct, kw_only=True):
    reservation_id: uuid.UUID
    restaurant_id: uuid.UUID
    score: int
    comment: str | None
    log_position: int | None = None


class DepositView(msgspec.Struct, kw_only=True):
    """A deposit's payment status (for the read side's ``/dining/reservations/{id}/deposit``)."""

    reservation_id: uuid.UUID
    customer: str
    amount: int
    status: Literal["PAID", "FAILED", "REFUNDED", "FORFEITED"]
    failure_reason: str | None
    charged_at: dt.datetime
    updated_at: dt.datetime


def resource(view: msgspec.Struct) -> dict[str, object]:
    """A view as the command helper's resource (it adds ``log_position`` itself)."""
    body = msgspec.structs.asdict(view)
    body.pop("log_position", None)
    return body
