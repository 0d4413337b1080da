"""Dining's query endpoints: restaurants, reservations, the customer center, recommendations.

Reservation state is read from the customer center read model and recommendations from the
recommendation views (CQRS), never from the write side's aggregates; only the restaurant
catalogue, which has no projection, comes from the restaurant context's query functions
(``api.dining.services``). Every GET takes ``min_position`` for read-your-writes (see
``api.dining.freshness``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import psycopg
from litestar import Controller, Response, Router, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter

from api import cursors
from api.auth import Principal, Role, requires_roles
from api.dining import services, views
from api.dining.freshness import STALE_RESPONSE_HEADERS, MinPosition, caught_up, stale_headers
from api.dining.query_schemas import (
    DepositState,
    RecommendationList,
    ReservationPage,
    ReservationState,
    RestaurantDayPage,
    RestaurantPage,
    TimelinePage,
)
from api.dining.schemas import RestaurantView
from api.openapi import problem_responses
from api.problems import problem
from api.schemas import MAX_BIGINT, NO_NUL
from domain.dining.reservation import ReservationStatus
from haengbok.settings import Settings
from projections.dining.customer_reservations import CustomerReservations
from projections.dining.customer_timeline import CustomerTimeline
from projections.dining.recommendation_views import RecommendationEntries, RestaurantRatings

AsyncConn = NamedDependency[psycopg.AsyncConnection[Any]]
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Page size")]
Offset = Annotated[int, QueryParameter(ge=0, le=MAX_BIGINT, description="Items to skip")]
DINING = "/dining"

_RESERVATIONS = (CustomerReservations().name,)
_TIMELINE = (CustomerTimeline().name, CustomerReservations().name)
_RECOMMENDATIONS = (RestaurantRatings().name, RecommendationEntries().name)


async def _provide_rating_prior(settings: NamedDependency[Settings]) -> views.RatingPrior:
    return views.RatingPrior.from_settings(settings)


def _not_found(what: str, ident: uuid.UUID, fresh: bool) -> Exception:
    """The same problem type and title as the commands' (``api.dining.problems``)."""
    return problem(
        404,
        f"dining-{what}-not-found",
        title=f"{what.capitalize()} not found",
        detail=f"No {what} {ident}.",
        headers=stale_headers(fresh),
    )


async def _readable_reservation(
    conn: psycopg.AsyncConnection[Any], principal: Principal, reservation_id: uuid.UUID
) -> tuple[dict[str, Any] | None, bool]:
    """The reservation's row if the caller may read it (its customer, or the restaurant's
    owner), and whether the customer center had projected it.

    A reservation requested a moment ago may not be projected yet: its ``Location`` must not
    answer 404 meanwhile, so the row is then what the reservation context holds itself, and
    the answer says it is stale. Anyone else gets None, exactly as for a reservation that does
    not exist, so a reservation id reveals nothing about other customers.
    """
    row = await views.reservation_row(conn, reservation_id)
    projected = row is not None
    if row is None:
        row = await views.written_reservation_row(conn, reservation_id)
    if row is None or not await _may_read(conn, principal, row):
        return None, projected
    return row, projected


async def _may_read(
    conn: psycopg.AsyncConnection[Any], principal: Principal, row: dict[str, Any]
) -> bool:
    if Role.CUSTOMER in principal.roles and row["customer"] == principal.subject:
        return True
    if Role.RESTAURANT_OWNER in principal.roles and row["restaurant_id"] is not None:
        restaurant = await services.get_restaurant(conn, row["restaurant_id"])
        return restaurant is not None and restaurant.owner == principal.subject
    return False


class RestaurantQueries(Controller):
    """The restaurant catalogue, for every signed-in caller."""

    path = "/restaurants"
    tags = ["dining"]

    @get("/", operation_id="listRestaurants", responses=problem_responses(400, 401, 503))
    async def list_restaurants(
        self,
        db_conn: AsyncConn,
        cuisine: Annotated[
            str | None, QueryParameter(description="Only this cuisine", pattern=NO_NUL)
        ] = None,
        limit: Limit = 20,
        offset: Offset = 0,
        min_position: MinPosition = None,
    ) -> RestaurantPage:
        """Restaurants by name with their slots, seats per slot and deposit.

        Read from the restaurant context's own query functions: a registration is visible
        when its command returns, so ``min_position`` is always reached already."""
        # One more than the page tells whether another page follows, without counting.
        found = await services.list_restaurants(
            db_conn, cuisine=cuisine, limit=limit + 1, offset=offset
        )
        return RestaurantPage(
            items=[RestaurantView.of(r) for r in found[:limit]],
            limit=limit,
            offset=offset,
            next_offset=offset + limit if len(found) > limit else None,
        )

    @get(
        "/{restaurant_id:uuid}",
        operation_id="getRestaurant",
        responses=problem_responses(400, 401, 404, 503),
    )
    async def get_restaurant(
        self,
        db_conn: AsyncConn,
        restaurant_id: FromPath[uuid.UUID],
        min_position: MinPosition = None,
    ) -> RestaurantView:
        """One restaurant's offer."""
        found = await services.get_restaurant(db_conn, restaurant_id)
        if found is None:
            raise _not_found("restaurant", restaurant_id, fresh=True)
        return RestaurantView.of(found)


# "<slot>~<reservation id>": where the page before ended.
_DAY_CURSOR = r"^[0-9]{2}:[0-9]{2}~[0-9a-f\-]{36}$"


def _day_cursor(after: str | None) -> tuple[str, uuid.UUID] | None:
    if after is None:
        return None
    return cursors.decode_keyed(after, page="this restaurant's day", key=str)


class RestaurantDayQueries(Controller):
    """A restaurant's reservations of one day, for its owner (or ops)."""

    path = "/restaurants"
    tags = ["dining"]
    guards = [requires_roles(Role.RESTAURANT_OWNER, Role.OPS)]

    @get(
        "/{restaurant_id:uuid}/reservations",
        operation_id="listRestaurantReservations",
        responses=problem_responses(400, 401, 403, 404, 503),
    )
    async def restaurant_reservations(
        self,
        db_conn: AsyncConn,
        principal: NamedDependency[Principal],
        restaurant_id: FromPath[uuid.UUID],
        date: Annotated[dt.date, QueryParameter(description="The day (YYYY-MM-DD)")],
        status: Annotated[
            ReservationStatus | None, QueryParameter(description="Only this status")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="Page size")] = 100,
        after: Annotated[
            str | None,
            QueryParameter(
                pattern=_DAY_CURSOR,
                description="Cursor: the page after the one whose `next_after` this is",
            ),
        ] = None,
        min_position: MinPosition = None,
    ) -> RestaurantDayPage:
        """Whom to expect: the day's reservations by slot, every status (filter with
        `status`, e.g. CONFIRMED to record visits). Read from the reservation context's own
        rows, so a reservation is listed once its request returns (``min_position`` is always
        reached). Another owner's restaurant is a 404, as an unknown one."""
        found = await services.get_restaurant(db_conn, restaurant_id)
        if found is None or (Role.OPS not in principal.roles and found.owner != principal.subject):
            raise _not_found("restaurant", restaurant_id, fresh=True)
        return await views.restaurant_day(
            db_conn, restaurant_id, date, status=None if status is None else str(status),
            limit=limit, after=_day_cursor(after),
        )  # fmt: skip


class ReservationQueries(Controller):
    """One reservation, for its customer or the restaurant's owner."""

    path = "/reservations"
    tags = ["dining"]
    guards = [requires_roles(Role.CUSTOMER, Role.RESTAURANT_OWNER)]

    @get(
        "/{reservation_id:uuid}",
        operation_id="getReservation",
        responses=problem_responses(400, 401, 403, 404, 503),
        response_headers=STALE_RESPONSE_HEADERS,
    )
    async def get_reservation(
        self,
        db_conn: AsyncConn,
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        reservation_id: FromPath[uuid.UUID],
        min_position: MinPosition = None,
    ) -> Response[ReservationState]:
        """The reservation's status, deposit, restaurant answer, recommendation and rating."""
        fresh = await caught_up(db_conn, _RESERVATIONS, min_position, settings)
        row, projected = await _readable_reservation(db_conn, principal, reservation_id)
        if row is None:
            raise _not_found("reservation", reservation_id, fresh)
        return Response(views.reservation_view(row), headers=stale_headers(fresh and projected))

    @get(
        "/{reservation_id:uuid}/deposit",
        operation_id="getReservationDeposit",
        responses=problem_responses(400, 401, 403, 404, 503),
        response_headers=STALE_RESPONSE_HEADERS,
    )
    async def get_deposit(
        self,
        db_conn: AsyncConn,
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        reservation_id: FromPath[uuid.UUID],
        min_position: MinPosition = None,
    ) -> Response[DepositState]:
        """The deposit's payment status: null until paid or failed, then PAID, FAILED,
        REFUNDED or FORFEITED."""
        fresh = await caught_up(db_conn, _RESERVATIONS, min_position, settings)
        row, projected = await _readable_reservation(db_conn, principal, reservation_id)
        if row is None:
            raise _not_found("reservation", reservation_id, fresh)
        return Response(views.deposit_of(row), headers=stale_headers(fresh and projected))


class CustomerCenter(Controller):
    """My reservations and my timeline (customers see only their own)."""

    path = "/customer-center"
    tags = ["dining"]
    guards = [requires_roles(Role.CUSTOMER)]

    @get(
        "/reservations",
        operation_id="listMyReservations",
        responses=problem_responses(400, 401, 403, 503),
        response_headers=STALE_RESPONSE_HEADERS,
    )
    async def my_reservations(
        self,
        db_conn: AsyncConn,
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        limit: Limit = 20,
        offset: Offset = 0,
        after: Annotated[
            str | None,
            QueryParameter(
                pattern=cursors.PATTERN_OR_NO_TIME,
                description="Cursor: the page after the one whose `next_after` this is (instead "
                "of `offset`: reservations made meanwhile do not shift the pages)",
            ),
        ] = None,
        min_position: MinPosition = None,
    ) -> Response[ReservationPage]:
        """My reservations, newest first, by `offset` or by the cursor `after`."""
        if after is not None and offset:
            raise problem(
                400, "offset-and-cursor", title="Offset and cursor together",
                detail="Page with `offset` or with `after` (the `next_after` of the page "
                "before), not both.",
            )  # fmt: skip
        fresh = await caught_up(db_conn, _RESERVATIONS, min_position, settings)
        page = await views.customer_reservations(
            db_conn, principal.subject, limit=limit, offset=offset, after=after
        )
        return Response(page, headers=stale_headers(fresh))

    @get(
        "/timeline",
        operation_id="getMyTimeline",
        responses=problem_responses(400, 401, 403, 404, 503),
        response_headers=STALE_RESPONSE_HEADERS,
    )
    async def my_timeline(
        self,
        db_conn: AsyncConn,
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        reservation_id: Annotated[
            uuid.UUID | None, QueryParameter(description="Only this reservation of mine")
        ] = None,
        after: Annotated[
            int,
            QueryParameter(ge=0, le=MAX_BIGINT, description="Entries after this log position"),
        ] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="Page size")] = 100,
        min_position: MinPosition = None,
    ) -> Response[TimelinePage]:
        """Everything that happened to my reservations (events, and the commands between
        contexts), in log order."""
        fresh = await caught_up(db_conn, _TIMELINE, min_position, settings)
        if reservation_id is not None:
            row = await views.reservation_row(db_conn, reservation_id)
            if row is None or row["customer"] != principal.subject:
                raise _not_found("reservation", reservation_id, fresh)
        page = await views.customer_timeline(
            db_conn, principal.subject, reservation_id, after=after, limit=limit
        )
        return Response(page, headers=stale_headers(fresh))


class RecommendationQueries(Controller):
    """Restaurants ranked by rating, for every signed-in caller."""

    path = "/recommendations"
    tags = ["dining"]
    dependencies = {"rating_prior": Provide(_provide_rating_prior)}

    @get(
        "/",
        operation_id="listRecommendations",
        responses=problem_responses(400, 401, 503),
        response_headers=STALE_RESPONSE_HEADERS,
    )
    async def ranking(
        self,
        db_conn: AsyncConn,
        settings: NamedDependency[Settings],
        rating_prior: NamedDependency[views.RatingPrior],
        limit: Annotated[int, QueryParameter(ge=1, le=100, description="Top this many")] = 10,
        offset: Offset = 0,
        min_position: MinPosition = None,
    ) -> Response[RecommendationList]:
        """Restaurants by Bayesian average rating, (C*m + sum) / (C + count): C imaginary
        ratings of m keep one 5-star review from topping the list. Ties: more ratings first."""
        fresh = await caught_up(db_conn, _RECOMMENDATIONS, min_position, settings)
        items = await views.ranking(db_conn, rating_prior, limit=limit, offset=offset)
        body = RecommendationList(
            prior_mean=rating_prior.mean, prior_weight=rating_prior.weight, items=items
        )
        return Response(body, headers=stale_headers(fresh))


# Paths are relative to /dining. Litestar refuses two route layers that share a path (each
# brings its own OPTIONS handler), and GET and POST /dining/restaurants are such a pair: where
# the command controllers are served too, these belong in the same /dining router as them.
QUERY_CONTROLLERS: tuple[type[Controller], ...] = (
    RestaurantQueries,
    RestaurantDayQueries,
    ReservationQueries,
    CustomerCenter,
    RecommendationQueries,
)


def controllers() -> list[Router]:
    """Dining's query controllers on their own under ``/dining`` (see ``QUERY_CONTROLLERS``)."""
    return [Router(path=DINING, route_handlers=list(QUERY_CONTROLLERS))]
