"""The restaurants a reservation request is decided on, kept between requests.

A reservation needs its restaurant's name, slots, seats per slot and deposit. Reading them for
every request is a round trip of its own, as long as the write that follows. So each API
process keeps the restaurants it has read, and the write checks in the same statement that the
restaurant is still as kept (``dining.insert_reservation``, with ``outbox.expect``). A kept
restaurant is therefore never trusted, only tried: when it has changed, the write fails with
``StaleRead`` and writes nothing, and the request reads the restaurant afresh and decides again.
That is why there is no expiry and no invalidation across processes: being out of date costs
one more round trip, never a wrong reservation.

The cache holds at most ``max_entries`` restaurants and forgets the least recently used.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from api.dining.services import get_restaurant
from domain.dining.restaurant import Restaurant

Loader = Callable[[psycopg.AsyncConnection[Any], uuid.UUID], Awaitable[Restaurant | None]]
DEFAULT_MAX_ENTRIES = 10_000


class RestaurantCache:
    """Restaurants by id, for the requests of one event loop (no locking: no awaits between
    a lookup and its update)."""

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES, load: Loader = get_restaurant):
        if max_entries < 1:
            raise ValueError("a restaurant cache holds at least one restaurant")
        self._max = max_entries
        self._load = load
        self._kept: OrderedDict[uuid.UUID, Restaurant] = OrderedDict()

    async def get(
        self, conn: psycopg.AsyncConnection[Any], restaurant_id: uuid.UUID, *, fresh: bool = False
    ) -> Restaurant | None:
        """The restaurant as kept, or read on ``conn`` when not kept (or ``fresh``); None when
        there is no such restaurant (nothing is kept for it)."""
        if not fresh:
            kept = self._kept.get(restaurant_id)
            if kept is not None:
                self._kept.move_to_end(restaurant_id)
                return kept
        restaurant = await self._load(conn, restaurant_id)
        if restaurant is None:
            self._kept.pop(restaurant_id, None)
            return None
        self._kept[restaurant_id] = restaurant
        self._kept.move_to_end(restaurant_id)
        while len(self._kept) > self._max:
            self._kept.popitem(last=False)
        return restaurant

    def __len__(self) -> int:
        return len(self._kept)
