"""Dining's command endpoints: HTTP in, a use case in one transaction, 202 + Location out.

Every route goes through the platform's command runner, so ``Idempotency-Key`` and
``Prefer: wait=N`` work on all of them. Rules live in the domain; these only translate.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from litestar import Controller, Litestar, Response, Router, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from api.auth import Principal, Role, all_of, requires_roles
from api.commands import CommandResult, CommandRunner, Resource
from api.dining import reservations
from api.dining.restaurant_cache import RestaurantCache
from api.dining.restaurants import register_restaurant
from api.dining.schemas import (
    RatingCreate,
    RatingView,
    ReservationCreate,
    ReservationView,
    RestaurantCreate,
    RestaurantView,
    VisitCreate,
    resource,
)
from api.dining.services import get_reservation
from api.dining.subscribers import DEPOSIT, RECOMMENDATION, SAGA, reservation_saga
from api.openapi import COMMAND_RESPONSE_HEADERS, command_responses, problem_responses
from api.problems import problem
from api.shedding import QueueLimits, refuse_when_overloaded
from domain.dining.clock import Clock, utc_now
from domain.dining.reservation import SETTLED, Reservation, VisitOutcome
from haengbok.settings import Settings
from outbox.envelope import Appended, MessageContext
from outbox.sagas import SagaRunner

Conn = psycopg.AsyncConnection[Any]
DINING = "/dining"
RESERVATIONS = "/reservations"


def _queue_limits(app: Litestar) -> QueueLimits:
    settings: Settings = app.state.settings
    return settings.shed_queue_max_depth, settings.shed_queue_max_age_seconds


# Payment circuit open, or the saga, deposit or recommendation queue backed up beyond the
# settings' limits: stop taking reservations, tell the client to retry. Below the limits a
# burst is taken and waits in the queues. The saga's queue is where a burst waits first: when
# the saga falls behind, the queues after it stay short and young, so without its own limit
# nothing would close the door. The restaurant's queue is left out on purpose: with the
# restaurant context down, reservations are still taken, paid, and confirmed once it is back.
_SHED_WHEN_OVERLOADED = refuse_when_overloaded(
    breaker="payments", queues=[SAGA, DEPOSIT, RECOMMENDATION], limits=_queue_limits
)


def _location(reservation_id: uuid.UUID) -> str:
    return f"{DINING}{RESERVATIONS}/{reservation_id}"


def _accepted(changed: tuple[Reservation, list[Appended]]) -> CommandResult:
    reservation, appended = changed
    view = resource(ReservationView.of(reservation))
    return CommandResult(view, _location(reservation.reservation_id), appended)


async def reservation_settled(conn: Conn, accepted: Resource) -> Resource | None:
    """The reservation once the saga has decided it (confirmed, rejected...), else None."""
    reservation = await get_reservation(conn, uuid.UUID(str(accepted["reservation_id"])))
    if reservation is None or reservation.status not in SETTLED:
        return None
    return resource(ReservationView.of(reservation))


@dataclass(frozen=True, slots=True)
class DiningCommand:
    """What a reservation command needs: the command runner (which knows the caller), the
    Dining clock and the app's kept restaurants. One dependency rather than several on
    purpose: Litestar resolves sibling dependencies concurrently, in an anyio task group per
    request, which cost more CPU than the command's own SQL on the siege."""

    runner: CommandRunner
    clock: Clock
    restaurants: RestaurantCache
    sagas: ReservationSagas

    @property
    def caller(self) -> str:
        return self.runner.principal.subject

    @property
    def saga(self) -> SagaRunner:
        """The reservation saga a request starts, with the settings' step deadline."""
        return self.sagas.runner(self.runner.settings)


class ReservationSagas:
    """The app's reservation saga runtime, built once per step deadline (the settings')."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._runners: dict[int, SagaRunner] = {}

    def runner(self, settings: Settings) -> SagaRunner:
        step_deadline_ms = int(settings.dining_step_deadline_seconds * 1000)
        runner = self._runners.get(step_deadline_ms)
        if runner is None:
            runner = reservation_saga(step_deadline_ms=step_deadline_ms, clock=self.clock)
            self._runners[step_deadline_ms] = runner
        return runner


class RestaurantCommands(Controller):
    """Restaurant owners register their restaurants."""

    path = "/restaurants"
    tags = ["dining"]
    guards = [requires_roles(Role.RESTAURANT_OWNER, Role.OPS)]

    @post(
        "/",
        operation_id="registerRestaurant",
        responses=command_responses(),
        status_code=202,
        response_headers=COMMAND_RESPONSE_HEADERS,
    )
    async def register(
        self,
        data: JSONBody[RestaurantCreate],
        command_runner: NamedDependency[CommandRunner],
    ) -> Response[RestaurantView]:
        """Register a restaurant: its slots, seats and deposit. An owner registers their own;
        an admin (ops) registers one for the owner named in ``owner``."""
        owner = _registering_owner(command_runner.principal, data.owner)

        async def handle(conn: Conn, ctx: MessageContext) -> CommandResult:
            restaurant, appended = await register_restaurant(
                conn,
                ctx,
                owner=owner,
                name=data.name,
                cuisine=data.cuisine,
                slots=data.slots,
                capacity_per_slot=data.capacity_per_slot,
                deposit_amount=data.deposit_amount,
            )
            view = resource(RestaurantView.of(restaurant))
            return CommandResult(view, f"{DINING}/restaurants/{restaurant.restaurant_id}", appended)

        return await command_runner.run(handle)


def _registering_owner(principal: Principal, named: str | None) -> str:
    """Whose restaurant a registration makes: the caller's own, or (for ops) the named owner's."""
    if Role.OPS in principal.roles and named is not None:
        return named
    if Role.RESTAURANT_OWNER in principal.roles and named in (None, principal.subject):
        return principal.subject
    if Role.RESTAURANT_OWNER in principal.roles:
        raise problem(
            403, "dining-not-your-restaurant", detail="An owner registers their own restaurants."
        )
    raise problem(
        422,
        "dining-owner-required",
        title="Owner required",
        detail="An admin registers a restaurant for an owner: name them in `owner`.",
    )


class ReservationCommands(Controller):
    """Customers reserve, cancel and rate; owners record the visit."""

    path = RESERVATIONS
    tags = ["dining"]

    @post(
        "/",
        operation_id="requestReservation",
        # One guard: Litestar copies the handler for each (api.auth.all_of).
        guards=[all_of(requires_roles(Role.CUSTOMER), _SHED_WHEN_OVERLOADED)],
        responses=command_responses(settled=ReservationView),
        status_code=202,
        response_headers=COMMAND_RESPONSE_HEADERS,
    )
    async def request(
        self,
        data: JSONBody[ReservationCreate],
        dining: NamedDependency[DiningCommand],
    ) -> Response[ReservationView]:
        """Reserve a slot; the deposit is charged next. `Prefer: wait=N` answers with the
        settled reservation (CONFIRMED or REJECTED) if that happens within N seconds."""

        async def handle(conn: Conn, ctx: MessageContext) -> CommandResult:
            return _accepted(
                await reservations.request_reservation(
                    conn,
                    ctx,
                    customer=dining.caller,
                    restaurant_id=data.restaurant_id,
                    date=data.date,
                    slot=data.slot,
                    party_size=data.party_size,
                    now=dining.clock(),
                    restaurants=dining.restaurants,
                    saga=dining.saga,
                )
            )

        # request_reservation writes row and event in one statement (with the restaurant kept
        # from an earlier request, checked by that statement), or reads the restaurant first.
        return await dining.runner.run(handle, settled=reservation_settled, writes_once=True)

    @post(
        "/{reservation_id:uuid}/cancel",
        operation_id="cancelReservation",
        guards=[requires_roles(Role.CUSTOMER)],
        responses={**command_responses(settled=ReservationView), **problem_responses(404)},
        status_code=202,
        response_headers=COMMAND_RESPONSE_HEADERS,
    )
    async def cancel(
        self,
        reservation_id: FromPath[uuid.UUID],
        dining: NamedDependency[DiningCommand],
    ) -> Response[ReservationView]:
        """Cancel your reservation before its slot begins; the deposit is refunded, the seats
        released and the recommendation entry deleted after the answer."""

        async def handle(conn: Conn, ctx: MessageContext) -> CommandResult:
            return _accepted(
                await reservations.cancel_reservation(
                    conn,
                    ctx,
                    reservation_id=reservation_id,
                    customer=dining.caller,
                    now=dining.clock(),
                )
            )

        return await dining.runner.run(handle, settled=reservation_settled)

    @post(
        "/{reservation_id:uuid}/visit",
        operation_id="recordVisit",
        guards=[requires_roles(Role.RESTAURANT_OWNER)],
        responses={**command_responses(settled=ReservationView), **problem_responses(404)},
        status_code=202,
        response_headers=COMMAND_RESPONSE_HEADERS,
    )
    async def visit(
        self,
        reservation_id: FromPath[uuid.UUID],
        data: JSONBody[VisitCreate],
        dining: NamedDependency[DiningCommand],
    ) -> Response[ReservationView]:
        """Record whether the party came (COMPLETED) or not (NO_SHOW: the deposit is kept)."""

        async def handle(conn: Conn, ctx: MessageContext) -> CommandResult:
            return _accepted(
                await reservations.record_visit(
                    conn,
                    ctx,
                    reservation_id=reservation_id,
                    owner=dining.caller,
                    outcome=VisitOutcome(data.outcome),
                    now=dining.clock(),
                )
            )

        return await dining.runner.run(handle, settled=reservation_settled)

    @post(
        "/{reservation_id:uuid}/rating",
        operation_id="rateReservation",
        guards=[requires_roles(Role.CUSTOMER)],
        responses={**command_responses(), **problem_responses(404)},
        status_code=202,
        response_headers=COMMAND_RESPONSE_HEADERS,
    )
    async def rate(
        self,
        reservation_id: FromPath[uuid.UUID],
        data: JSONBody[RatingCreate],
        dining: NamedDependency[DiningCommand],
    ) -> Response[RatingView]:
        """Rate your visit 1 to 5, once."""

        async def handle(conn: Conn, ctx: MessageContext) -> CommandResult:
            reservation, appended = await reservations.rate_reservation(
                conn,
                ctx,
                reservation_id=reservation_id,
                customer=dining.caller,
                score=data.score,
                comment=data.comment,
                now=dining.clock(),
            )
            view = RatingView(
                reservation_id=reservation_id,
                restaurant_id=reservation.restaurant_id,
                score=data.score,
                comment=data.comment,
            )
            return CommandResult(resource(view), _location(reservation_id), appended)

        return await dining.runner.run(handle)


COMMAND_CONTROLLERS: tuple[type[Controller], ...] = (RestaurantCommands, ReservationCommands)


def dining_command(clock: Clock) -> Callable[[CommandRunner], DiningCommand]:
    """The provider of the ``dining`` dependency, with the clock the routes use and one
    restaurant cache for all their requests."""
    restaurants = RestaurantCache()
    sagas = ReservationSagas(clock)

    def provide_dining(command_runner: NamedDependency[CommandRunner]) -> DiningCommand:
        return DiningCommand(command_runner, clock, restaurants, sagas)

    return provide_dining


def controllers(
    clock: Clock = utc_now, *, alongside: Sequence[type[Controller]] = ()
) -> list[Router]:
    """Dining's command routes under ``/dining``; tests pass a clock they control.

    ``alongside`` puts other controllers (the query side's) in the same router: Litestar
    refuses two route layers that share a path, as GET and POST ``/dining/restaurants`` do.
    """
    return [
        Router(
            path=DINING,
            route_handlers=[*COMMAND_CONTROLLERS, *alongside],
            dependencies={"dining": Provide(dining_command(clock), sync_to_thread=False)},
        )
    ]
