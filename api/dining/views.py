"""The Dining read side: plain SQL over the denormalised read models, one function per view.

Functions take the caller's connection and return response structs; they decide nothing about
who may see what (the controllers do), except that customer-scoped views filter by customer.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
import psycopg
from psycopg.rows import dict_row

from api import cursors
from api.dining.query_schemas import (
    DepositState,
    ExpectedReservation,
    ReservationPage,
    ReservationRating,
    ReservationState,
    RestaurantDayPage,
    RestaurantRanking,
    TimelineEntry,
    TimelinePage,
)
from haengbok.settings import Settings
from sql import query

AsyncConn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True, slots=True)
class RatingPrior:
    """The Bayesian prior of the ranking: ``weight`` (C) imaginary ratings of ``mean`` (m).

    With m = 3 and C = 5, one 5-star rating scores (5*3 + 5) / 6 = 3.33 while ten 4-star
    ratings score (5*3 + 40) / 15 = 3.67: a restaurant climbs by being rated well often.
    """

    mean: float = 3.0
    weight: float = 5.0

    def __post_init__(self) -> None:
        if self.weight <= 0:
            raise ValueError("the prior weight must be positive (it is a number of ratings)")

    @classmethod
    def from_settings(cls, settings: Settings) -> RatingPrior:
        """The prior operators configured, or the defaults above.

        Read by name because ``Settings`` does not define ``rating_prior_mean`` and
        ``rating_prior_weight`` yet; once it does, this is where they take effect.
        """
        default = cls()
        return cls(
            mean=float(getattr(settings, "rating_prior_mean", default.mean)),
            weight=float(getattr(settings, "rating_prior_weight", default.weight)),
        )


async def _rows(conn: AsyncConn, name: str, **params: Any) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query(name), params)
        return await cur.fetchall()


def reservation_view(row: dict[str, Any]) -> ReservationState:
    """A customer center row as the API shows it."""
    rating = None
    if row["rating_score"] is not None:
        rating = ReservationRating(
            score=row["rating_score"], comment=row["rating_comment"], rated_at=row["rated_at"]
        )
    return ReservationState(
        reservation_id=row["reservation_id"],
        customer=row["customer"],
        restaurant_id=row["restaurant_id"],
        restaurant_name=row["restaurant_name"],
        date=row["reserved_date"],
        slot=row["slot"],
        party_size=row["party_size"],
        status=row["status"],
        reject_reason=row["reject_reason"],
        deposit=deposit_of(row),
        restaurant_booking=row["booking_status"],
        restaurant_booking_reason=row["booking_reason"],
        recommendation=row["recommendation_status"],
        rating=rating,
        requested_at=row["requested_at"],
        updated_at=row["updated_at"],
        log_position=row["last_global_position"],
    )


def deposit_of(row: dict[str, Any]) -> DepositState:
    """The deposit part of a reservation row."""
    return DepositState(
        reservation_id=row["reservation_id"],
        status=row["deposit_status"],
        amount=row["deposit_amount"],
        reason=row["deposit_reason"],
        updated_at=row["deposit_updated_at"],
    )


async def reservation_row(conn: AsyncConn, reservation_id: uuid.UUID) -> dict[str, Any] | None:
    """The customer center row of one reservation, or None if nothing about it is projected."""
    rows = await _rows(conn, "dining_read.reservation", reservation_id=reservation_id)
    return rows[0] if rows else None


async def written_reservation_row(
    conn: AsyncConn, reservation_id: uuid.UUID
) -> dict[str, Any] | None:
    """A reservation the customer center has not projected yet, as the reservation context
    holds it, in the read model's columns (the other contexts' parts are None)."""
    rows = await _rows(conn, "dining_read.reservation_written", reservation_id=reservation_id)
    return rows[0] if rows else None


async def customer_reservations(
    conn: AsyncConn, customer: str, *, limit: int, offset: int, after: str | None = None
) -> ReservationPage:
    """The customer's reservations, newest first, one page: ``offset`` rows in, or the rows
    after the cursor ``after`` (``next_after`` of the page before, see ``api.cursors``)."""
    # One row more than asked tells whether another page follows, without counting.
    after_at, after_id = (
        (None, None)
        if after is None
        else cursors.decode(after, page="/dining/customer-center/reservations")
    )
    rows = await _rows(conn, "dining_read.customer_reservations", customer=customer,
                       limit=limit + 1, offset=offset, after_at=after_at,
                       after_id=after_id)  # fmt: skip
    more = len(rows) > limit
    page = rows[:limit]
    return ReservationPage(
        items=[reservation_view(r) for r in page],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if more and after is None else None,
        next_after=cursors.encode(page[-1]["requested_at"], page[-1]["reservation_id"])
        if more
        else None,
    )


async def customer_timeline(
    conn: AsyncConn, customer: str, reservation_id: uuid.UUID | None, *, after: int, limit: int
) -> TimelinePage:
    """The customer's timeline entries after log position ``after``, in log order."""
    rows = await _rows(
        conn,
        "dining_read.customer_timeline",
        customer=customer,
        reservation_id=reservation_id,
        after=after,
        limit=limit + 1,
    )
    more = len(rows) > limit
    items = [
        TimelineEntry(
            log_position=r["global_position"],
            reservation_id=r["reservation_id"],
            kind=r["kind"],
            type=r["type"],
            summary=r["summary"],
            occurred_at=r["occurred_at"],
        )
        for r in rows[:limit]
    ]
    return TimelinePage(items=items, next_after=items[-1].log_position if more else None)


async def ranking(
    conn: AsyncConn, prior: RatingPrior, *, limit: int, offset: int = 0
) -> list[RestaurantRanking]:
    """Restaurants by Bayesian average rating (ties: more ratings first), from rank
    ``offset + 1``."""
    rows = await _rows(
        conn,
        "dining_read.ranking",
        prior_mean=prior.mean,
        prior_weight=prior.weight,
        limit=limit,
        offset=offset,
    )
    return [
        RestaurantRanking(
            rank=rank,
            restaurant_id=r["restaurant_id"],
            name=r["restaurant_name"],
            cuisine=r["cuisine"],
            rating_count=r["rating_count"],
            average=r["average"],
            bayesian_average=r["bayesian_average"],
            active_entries=r["active_entries"],
        )
        for rank, r in enumerate(rows, start=offset + 1)
    ]


async def restaurant_day(
    conn: AsyncConn,
    restaurant_id: uuid.UUID,
    day: dt.date,
    *,
    status: str | None,
    limit: int,
    after: tuple[str, uuid.UUID] | None,
) -> RestaurantDayPage:
    """A restaurant's reservations of ``day`` by slot, after ``after`` = (slot, id)."""
    after_slot, after_id = after if after is not None else (None, None)
    rows = await _rows(conn, "dining_read.restaurant_reservations", restaurant_id=restaurant_id,
                       date=day, status=status, limit=limit + 1, after_slot=after_slot,
                       after_id=after_id)  # fmt: skip
    page = rows[:limit]
    more = len(rows) > limit
    return RestaurantDayPage(
        restaurant_id=restaurant_id,
        date=day,
        items=[msgspec.convert(r, ExpectedReservation) for r in page],
        limit=limit,
        next_after=f"{page[-1]['slot']}~{page[-1]['reservation_id']}" if more else None,
    )
