"""The restaurant context: a restaurant's offer (slots, seats, deposit) and its bookings.

Seats per slot are counted by the database (a CHECK constraint on the slot's row), never here:
concurrent bookings of the last seats must be decided by one authority that sees them all.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from domain.dining.errors import IllegalTransition, InvalidRestaurant
from domain.dining.messages import (
    ReservationAccepted,
    ReservationRefused,
    ReservationReleased,
    RestaurantRegistered,
)

# Every restaurant is in Korea; slots are local wall-clock times there.
RESTAURANT_TIMEZONE = ZoneInfo("Asia/Seoul")
SLOT_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_SLOT = re.compile(SLOT_PATTERN)
MAX_SLOTS = 48


def slot_starts_at(date: dt.date, slot: str) -> dt.datetime:
    """The instant a slot begins, e.g. 2026-05-01 "19:30" in Seoul."""
    return dt.datetime.combine(date, dt.time.fromisoformat(slot), tzinfo=RESTAURANT_TIMEZONE)


@dataclass(frozen=True)
class Restaurant:
    """What a restaurant offers: its slots, seats per slot and the deposit it asks for."""

    restaurant_id: uuid.UUID
    owner: str
    name: str
    cuisine: str
    slots: tuple[str, ...]
    capacity_per_slot: int
    deposit_amount: int

    @classmethod
    def register(
        cls,
        restaurant_id: uuid.UUID,
        owner: str,
        name: str,
        cuisine: str,
        slots: Iterable[str],
        capacity_per_slot: int,
        deposit_amount: int,
    ) -> tuple[Restaurant, RestaurantRegistered]:
        """A new restaurant, or ``InvalidRestaurant`` saying what is wrong with it."""
        offered = tuple(slots)
        if not name.strip() or not cuisine.strip():
            raise InvalidRestaurant("a restaurant needs a name and a cuisine")
        if not offered or len(offered) > MAX_SLOTS:
            raise InvalidRestaurant(f"a restaurant offers 1 to {MAX_SLOTS} time slots")
        bad = [s for s in offered if not _SLOT.match(s)]
        if bad:
            raise InvalidRestaurant(f"time slots are HH:MM (00:00 to 23:59), not {bad}")
        if len(set(offered)) != len(offered):
            raise InvalidRestaurant("each time slot is listed once")
        if capacity_per_slot < 1:
            raise InvalidRestaurant("a slot has at least one seat")
        if deposit_amount < 1:
            raise InvalidRestaurant("the deposit is a whole number of KRW above zero")
        restaurant = cls(
            restaurant_id,
            owner,
            name.strip(),
            cuisine.strip(),
            tuple(sorted(offered)),
            capacity_per_slot,
            deposit_amount,
        )
        return restaurant, RestaurantRegistered(
            restaurant_id,
            owner,
            restaurant.name,
            restaurant.cuisine,
            restaurant.slots,
            capacity_per_slot,
            deposit_amount,
        )

    def offers(self, slot: str) -> bool:
        """Whether ``slot`` is one of the restaurant's time slots."""
        return slot in self.slots


class BookingStatus(StrEnum):
    ACCEPTED = "ACCEPTED"
    RELEASED = "RELEASED"


@dataclass
class Booking:
    """The seats one reservation holds in one slot; releasing twice releases once."""

    reservation_id: uuid.UUID
    restaurant_id: uuid.UUID
    date: dt.date
    slot: str
    party_size: int
    status: BookingStatus = BookingStatus.ACCEPTED

    def accepted(self) -> ReservationAccepted:
        """The restaurant's answer once the seats are taken."""
        return ReservationAccepted(self.reservation_id, self.restaurant_id)

    def release(self) -> ReservationReleased:
        """Give the seats back (cancel or compensation)."""
        if self.status is not BookingStatus.ACCEPTED:
            raise IllegalTransition(f"the seats of {self.reservation_id} are already released")
        self.status = BookingStatus.RELEASED
        return ReservationReleased(self.reservation_id, self.restaurant_id)


def refuse(reservation_id: uuid.UUID, restaurant_id: uuid.UUID, reason: str) -> ReservationRefused:
    """The restaurant's answer when it cannot seat a reservation."""
    return ReservationRefused(reservation_id, restaurant_id, reason)
