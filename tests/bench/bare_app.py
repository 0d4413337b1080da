"""The bare baseline for the Dining siege: a tiny Litestar app whose POST /dining/reservations
does the same inserts as the real command, and nothing else.

What it does: decode the JSON body (msgspec), borrow a connection from a psycopg async pool
(same size as the API's), and in ONE transaction insert the rows the real request writes:
the reservation (``reservation.reservation``, the same columns as
``dining.insert_reservation``), its ``ReservationRequested`` event (``outbox.event``, version 1
of a new stream, the same payload and context columns), and, since session 13, the saga
instance the request starts (``saga.instance``, as ``saga.insert_started``: first step, state,
deadline) and its ``TakeDeposit`` command (version 1 of the saga's stream); commit; answer 202
with the id and ``Location``.

What it does not do: no bearer token check or role guard, no load-shedding guard, no
correlation or metrics middleware, no ``Idempotency-Key`` claim or stored response, no lookup
of the restaurant (its name and deposit are constants), no domain validation (slot offered,
slot in the future, party size), no saga decision (the instance's row is built here), no
stream-version computation (a new stream starts at 1), no relay wake-up after the commit, and
nothing consumes what it writes (no relay, no saga).

    DATABASE_URL=... uvicorn tests.bench.bare_app:create_app --factory --workers N
    (``create_app_one_statement``: the same inserts as one statement, no transaction)
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import psycopg
from litestar import Litestar, Request, Response, get, post
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

RESTAURANT_NAME = "Bench restaurant"
DEPOSIT = 10_000

INSERT_RESERVATION = """
INSERT INTO reservation.reservation (reservation_id, customer, restaurant_id, restaurant_name,
                                     date, slot, party_size, deposit_amount, status)
VALUES (%(reservation_id)s, %(customer)s, %(restaurant_id)s, %(restaurant_name)s, %(date)s,
        %(slot)s, %(party_size)s, %(deposit_amount)s, 'PENDING')
"""
INSERT_EVENT = """
INSERT INTO outbox.event (event_id, kind, type, stream, version, payload, correlation_id,
                          causation_id, actor)
VALUES (%(event_id)s, 'event', 'reservation.ReservationRequested', %(stream)s, 1, %(payload)s,
        %(correlation_id)s, %(causation_id)s, %(customer)s)
"""

INSERT_SAGA = """
INSERT INTO saga.instance (saga_id, saga_type, status, step, state, completed_steps, version,
                           correlation_id, deadline_at, deadline_name)
VALUES (%(reservation_id)s, 'dining_reservation', 'RUNNING', 'taking_deposit', %(saga_state)s,
        '[]', 1, %(correlation_id)s, now() + interval '10 minutes', 'deposit')
"""
INSERT_COMMAND = """
INSERT INTO outbox.event (event_id, kind, type, stream, version, payload, correlation_id,
                          causation_id, actor)
VALUES (%(command_id)s, 'command', 'deposit.TakeDeposit', %(saga_stream)s, 1,
        %(command_payload)s, %(correlation_id)s, %(event_id)s, %(customer)s)
"""
INSERTS = (INSERT_RESERVATION, INSERT_EVENT, INSERT_SAGA, INSERT_COMMAND)

# create_app_one_statement: every row in one statement with no transaction around it, the shape
# the real command's write has had since session 10 (outbox.log.append_after_writes_async).
INSERT_ALL = (
    f"WITH _reservation AS ({INSERT_RESERVATION}), _event AS ({INSERT_EVENT}),"
    f" _saga AS ({INSERT_SAGA}) {INSERT_COMMAND}"
)


class ReservationBody(msgspec.Struct):
    restaurant_id: uuid.UUID
    date: dt.date
    slot: str
    party_size: int


@post("/dining/reservations", status_code=202)
async def reserve(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = msgspec.json.decode(await request.body(), type=ReservationBody)
    reservation_id = uuid.uuid4()
    params = {
        "reservation_id": reservation_id,
        "customer": "bench-customer",
        "restaurant_id": body.restaurant_id,
        "restaurant_name": RESTAURANT_NAME,
        "date": body.date,
        "slot": body.slot,
        "party_size": body.party_size,
        "deposit_amount": DEPOSIT,
        "event_id": uuid.uuid4(),
        "stream": f"reservation-{reservation_id}",
        "payload": Jsonb(
            {
                "reservation_id": str(reservation_id),
                "customer": "bench-customer",
                "restaurant_id": str(body.restaurant_id),
                "restaurant_name": RESTAURANT_NAME,
                "date": body.date.isoformat(),
                "slot": body.slot,
                "party_size": body.party_size,
                "deposit_amount": DEPOSIT,
            }
        ),
        "correlation_id": uuid.uuid4(),
        "causation_id": uuid.uuid4(),
        "saga_state": Jsonb(
            {
                "customer": "bench-customer",
                "restaurant_id": str(body.restaurant_id),
                "date": body.date.isoformat(),
                "slot": body.slot,
                "party_size": body.party_size,
            }
        ),
        "command_id": uuid.uuid4(),
        "saga_stream": f"saga-dining_reservation-{reservation_id}",
        "command_payload": Jsonb(
            {"reservation_id": str(reservation_id), "customer": "bench-customer", "amount": DEPOSIT}
        ),
    }
    pool: AsyncConnectionPool[Any] = request.app.state.pool
    if request.app.state.one_statement:
        async with pool.connection() as conn:  # autocommit: one round trip
            await conn.execute(INSERT_ALL, params)
    else:
        async with pool.connection() as conn, conn.transaction():
            for insert in INSERTS:
                await conn.execute(insert, params)
    location = f"/dining/reservations/{reservation_id}"
    answer = msgspec.json.encode({"reservation_id": reservation_id, "status": "PENDING"})
    return Response(answer, status_code=202, media_type="application/json",
                    headers={"Location": location})  # fmt: skip


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ready"}


def create_app() -> Litestar:
    """The inserts in a transaction: BEGIN, an INSERT each, COMMIT."""
    return _create_app(one_statement=False)


def create_app_one_statement() -> Litestar:
    """The same inserts as one statement in autocommit: one round trip."""
    return _create_app(one_statement=True)


def _create_app(*, one_statement: bool) -> Litestar:
    url = os.environ["DATABASE_URL"]

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # The API's pool settings (haengbok.settings: min 2, max 10, autocommit).
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            url, min_size=2, max_size=10, kwargs={"autocommit": True}, open=False
        )
        await pool.open(wait=True)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    app = Litestar(route_handlers=[reserve, health], lifespan=[lifespan], debug=False)
    app.state.one_statement = one_statement
    return app
