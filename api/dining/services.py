"""Dining's write-side query functions: how other code reads a context's own tables.

Other contexts and the read side never query the ``restaurant``, ``reservation`` or
``deposit`` schemas directly; they call these (on the API's async connections). One exception,
on purpose: a new reservation's insert checks in the same statement that the restaurant it was
decided on (read through ``get_restaurant``, perhaps by an earlier request) is unchanged
(``dining.insert_reservation``), since a second statement would cost the round trip it saves.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from api.dining.rows import reservation_from_row, restaurant_from_row
from api.dining.schemas import DepositView
from api.dining.storage import all_async, one_async
from domain.dining.reservation import Reservation
from domain.dining.restaurant import Restaurant

MAX_PAGE = 500


async def get_restaurant(
    conn: psycopg.AsyncConnection[Any], restaurant_id: uuid.UUID
) -> Restaurant | None:
    """One restaurant, or None."""
    row = await one_async(conn, "dining.get_restaurant", restaurant_id=restaurant_id)
    return None if row is None else restaurant_from_row(row)


async def list_restaurants(
    conn: psycopg.AsyncConnection[Any],
    *,
    cuisine: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Restaurant]:
    """Restaurants by name (then id), optionally of one cuisine; ``limit`` is capped."""
    rows = await all_async(
        conn,
        "dining.list_restaurants",
        cuisine=cuisine,
        limit=max(0, min(limit, MAX_PAGE)),
        offset=max(0, offset),
    )
    return [restaurant_from_row(r) for r in rows]


async def get_reservation(
    conn: psycopg.AsyncConnection[Any], reservation_id: uuid.UUID
) -> Reservation | None:
    """A reservation as the reservation context has it now, or None."""
    row = await one_async(conn, "dining.get_reservation", reservation_id=reservation_id)
    return None if row is None else reservation_from_row(row)


async def get_deposit(
    conn: psycopg.AsyncConnection[Any], reservation_id: uuid.UUID
) -> DepositView | None:
    """The deposit's payment status, or None while the provider has not answered the charge.

    The caller checks that ``customer`` is the one asking.
    """
    row = await one_async(conn, "dining.get_deposit", reservation_id=reservation_id)
    return None if row is None else DepositView(**row)
