"""Reservation requests decide on the restaurant as the API process keeps it
(``api/dining/restaurant_cache.py``), and their write checks it is still so: a restaurant
changed behind the cache's back is read afresh, and the reservation carries what is true now.

There is no endpoint that changes a restaurant yet, so these tests change its row directly,
as another process (or a later version of the API) would."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from api.dining.reservations import request_reservation
from api.dining.restaurant_cache import RestaurantCache
from api.dining.services import get_restaurant
from api.dining.storage import APPEND_ATTEMPTS
from api.dining.subscribers import reservation_saga
from domain.dining.restaurant import Restaurant
from haengbok.settings import Settings
from outbox.envelope import MessageContext
from outbox.log import StaleRead
from tests.integration.api.support import assert_problem
from tests.integration.dining.support import (
    Client,
    count_rows,
    customer,
    days_ahead,
    reservation_body,
    reserve,
    scalar,
)


def _change(url: str, restaurant_id: str, sql: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(f"UPDATE restaurant.restaurant SET {sql} WHERE restaurant_id = %s",
                     [restaurant_id])  # fmt: skip


def _requested_payload(url: str, reservation_id: str) -> dict[str, Any]:
    payload: dict[str, Any] = scalar(
        url,
        "SELECT payload FROM outbox.event WHERE stream = %s AND version = 1",
        f"reservation-{reservation_id}",
    )
    return payload


class TestOverHttp:
    @pytest.mark.parametrize("idempotent", [False, True], ids=["no key", "with a key"])
    def test_a_restaurant_changed_since_it_was_kept_is_read_afresh(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        restaurant: dict[str, Any],
        idempotent: bool,
    ) -> None:
        rid = restaurant["restaurant_id"]
        reserve(client, customer(settings), rid)  # the API process now keeps the restaurant
        _change(database_url, rid, "name = 'Haengbok Grill', deposit_amount = 25000")
        headers = customer(settings)
        if idempotent:  # the write then runs inside the key's transaction, in a savepoint
            headers["Idempotency-Key"] = str(uuid.uuid4())

        response = client.post("/dining/reservations", json=reservation_body(rid), headers=headers)

        assert response.status_code == 202, response.text
        accepted = response.json()
        assert (accepted["restaurant_name"], accepted["deposit_amount"]) == (
            "Haengbok Grill",
            25_000,
        )
        new = accepted["reservation_id"]
        assert (
            scalar(
                database_url,
                "SELECT deposit_amount FROM reservation.reservation WHERE reservation_id = %s",
                new,
            )
            == 25_000
        )
        payload = _requested_payload(database_url, new)
        assert (payload["restaurant_name"], payload["deposit_amount"]) == ("Haengbok Grill", 25_000)
        assert count_rows(database_url, "reservation.reservation") == 2

    def test_a_slot_no_longer_offered_is_refused_once_read_afresh(
        self, client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        rid = restaurant["restaurant_id"]
        reserve(client, customer(settings), rid, slot="19:00")
        _change(database_url, rid, "slots = ARRAY['12:00']")

        response = client.post(
            "/dining/reservations",
            json=reservation_body(rid, slot="19:00"),
            headers=customer(settings),
        )

        problem = assert_problem(response, 422)
        assert "no 19:00 slot" in problem["detail"]
        assert count_rows(database_url, "reservation.reservation") == 1

    def test_fewer_seats_per_slot_refuse_a_party_that_no_longer_fits(
        self, client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        rid = restaurant["restaurant_id"]
        reserve(client, customer(settings), rid, party_size=4)
        _change(database_url, rid, "capacity_per_slot = 2")

        response = client.post(
            "/dining/reservations",
            json=reservation_body(rid, party_size=4),
            headers=customer(settings),
        )

        assert "parties of 1 to 2" in assert_problem(response, 422)["detail"]
        assert count_rows(database_url, "reservation.reservation") == 1

    def test_a_restaurant_that_is_gone_is_refused(
        self, client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        rid = restaurant["restaurant_id"]
        reserve(client, customer(settings), rid)
        with psycopg.connect(database_url) as conn:
            conn.execute("DELETE FROM restaurant.restaurant WHERE restaurant_id = %s", [rid])

        response = client.post(
            "/dining/reservations", json=reservation_body(rid), headers=customer(settings)
        )

        assert "no restaurant" in assert_problem(response, 422)["detail"]
        assert count_rows(database_url, "reservation.reservation") == 1

    @pytest.mark.parametrize("idempotent", [False, True], ids=["no key", "with a key"])
    def test_a_restaurant_stale_on_every_try_answers_409_and_writes_nothing(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        restaurant: dict[str, Any],
        idempotent: bool,
    ) -> None:
        # Every insert of a reservation row fails the way a changed restaurant fails it (the
        # check's SQLSTATE); a sequence counts the tries, since it is not rolled back with them.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "CREATE SEQUENCE public.stale_tries;"
                " CREATE FUNCTION public.always_stale() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN PERFORM nextval('public.stale_tries');"
                " PERFORM outbox.expect(false, 'the restaurant changed (test)'); RETURN NEW;"
                " END $$;"
                " CREATE TRIGGER always_stale BEFORE INSERT ON reservation.reservation"
                " FOR EACH ROW EXECUTE FUNCTION public.always_stale()"
            )
        headers = customer(settings)
        if idempotent:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        try:
            response = client.post(
                "/dining/reservations",
                json=reservation_body(restaurant["restaurant_id"]),
                headers=headers,
            )
            tries = scalar(database_url, "SELECT last_value FROM public.stale_tries")
        finally:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(
                    "DROP TRIGGER always_stale ON reservation.reservation;"
                    " DROP FUNCTION public.always_stale(); DROP SEQUENCE public.stale_tries"
                )

        assert "retry the request" in assert_problem(response, 409)["detail"]
        assert tries == APPEND_ATTEMPTS
        assert count_rows(database_url, "reservation.reservation") == 0
        assert count_rows(database_url, "saga.instance") == 0
        assert count_rows(database_url, "outbox.event") == 1  # the restaurant's own
        if idempotent:  # nothing kept under the key either: the same request may run again
            assert count_rows(database_url, "ops.idempotency") == 0


class CountingLoader:
    """``get_restaurant`` that counts its reads; given ``answer``, it answers that instead."""

    def __init__(self, answer: Restaurant | None = None) -> None:
        self.reads = 0
        self.answer = answer

    async def __call__(
        self, conn: psycopg.AsyncConnection[Any], restaurant_id: uuid.UUID
    ) -> Restaurant | None:
        self.reads += 1
        if self.answer is not None:
            return self.answer
        return await get_restaurant(conn, restaurant_id)


def _request_many(url: str, restaurant_id: str, cache: RestaurantCache, count: int) -> None:
    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for i in range(count):
                await request_reservation(
                    conn, MessageContext.new(f"c{i}"), customer=f"c{i}",
                    restaurant_id=uuid.UUID(restaurant_id), date=days_ahead(2), slot="19:00",
                    party_size=2, now=dt.datetime.now(dt.UTC), restaurants=cache,
                    saga=reservation_saga(),
                )  # fmt: skip

    asyncio.run(go())


class TestTheCache:
    def test_a_kept_restaurant_is_not_read_again(
        self, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        loader = CountingLoader()
        cache = RestaurantCache(load=loader)

        _request_many(database_url, restaurant["restaurant_id"], cache, 3)

        assert loader.reads == 1
        assert count_rows(database_url, "reservation.reservation") == 3

    def test_a_restaurant_that_never_matches_gives_up_with_a_conflict_and_writes_nothing(
        self, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        async def real() -> Restaurant | None:
            async with await psycopg.AsyncConnection.connect(database_url) as conn:
                return await get_restaurant(conn, uuid.UUID(restaurant["restaurant_id"]))

        found = asyncio.run(real())
        assert found is not None
        loader = CountingLoader(answer=replace(found, deposit_amount=found.deposit_amount + 1))

        with pytest.raises(StaleRead, match="has changed since this request read it"):
            _request_many(
                database_url, restaurant["restaurant_id"], RestaurantCache(load=loader), 1
            )

        assert loader.reads == APPEND_ATTEMPTS
        assert count_rows(database_url, "reservation.reservation") == 0
        assert count_rows(database_url, "saga.instance") == 0
        assert count_rows(database_url, "outbox.event") == 1  # the restaurant's own

    def test_it_forgets_the_least_recently_used(self, database_url: str) -> None:
        restaurants = {uuid.uuid4(): f"r{i}" for i in range(3)}

        async def load(_: psycopg.AsyncConnection[Any], rid: uuid.UUID) -> Restaurant:
            loads.append(rid)
            return Restaurant(rid, "kim", restaurants[rid], "korean", ("19:00",), 4, 10_000)

        loads: list[uuid.UUID] = []
        first, second, third = restaurants
        cache = RestaurantCache(max_entries=2, load=load)

        async def go() -> None:
            async with await psycopg.AsyncConnection.connect(database_url) as conn:
                for rid in (first, second, first, third, first, second):
                    await cache.get(conn, rid)

        asyncio.run(go())

        # third pushed out second (first was used more recently), so second is read again
        assert loads == [first, second, third, second]
        assert len(cache) == 2

    def test_it_holds_at_least_one_restaurant(self) -> None:
        with pytest.raises(ValueError, match="at least one restaurant"):
            RestaurantCache(max_entries=0)
