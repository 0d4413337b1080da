"""POST /dining/restaurants: an owner registers a restaurant; nothing is written otherwise."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from haengbok.settings import Settings
from tests.integration.api.support import assert_problem, bearer
from tests.integration.dining.support import (
    Client,
    count_rows,
    customer,
    owner,
    restaurant_body,
)


def _nothing_written(url: str) -> None:
    assert count_rows(url, "restaurant.restaurant") == 0
    assert count_rows(url, "outbox.event") == 0


class TestRegister:
    def test_answers_202_with_location_and_records_the_event(
        self, client: Client, settings: Settings, database_url: str
    ) -> None:
        response = client.post(
            "/dining/restaurants",
            json=restaurant_body(slots=["19:00", "12:00"]),
            headers=owner(settings),
        )

        assert response.status_code == 202, response.text
        body = response.json()
        assert response.headers["location"] == f"/dining/restaurants/{body['restaurant_id']}"
        assert (body["owner"], body["slots"], body["deposit_amount"]) == (
            "kim",
            ["12:00", "19:00"],
            10_000,
        )
        with psycopg.connect(database_url) as conn:
            event = conn.execute(
                "SELECT type, payload->>'owner', position FROM outbox.event WHERE stream = %s",
                [f"restaurant-{body['restaurant_id']}"],
            ).fetchone()
            stored = conn.execute(
                "SELECT owner, slots, capacity_per_slot FROM restaurant.restaurant"
            ).fetchone()
        assert event == ("restaurant.RestaurantRegistered", "kim", body["log_position"])
        assert stored == ("kim", ["12:00", "19:00"], 4)

    def test_the_same_idempotency_key_registers_once(
        self, client: Client, settings: Settings, database_url: str
    ) -> None:
        headers = {**owner(settings), "Idempotency-Key": str(uuid.uuid4())}
        first = client.post("/dining/restaurants", json=restaurant_body(), headers=headers)
        again = client.post("/dining/restaurants", json=restaurant_body(), headers=headers)

        assert first.status_code == again.status_code == 202
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
        assert count_rows(database_url, "restaurant.restaurant") == 1


class TestInvalidRestaurant:
    @pytest.mark.parametrize(
        "overrides",
        [
            {"slots": ["7pm"]},
            {"slots": []},
            {"capacity_per_slot": 0},
            {"deposit_amount": 0},
            {"deposit_amount": "ten thousand"},
            {"name": ""},
            {"seats": 4},
        ],
    )
    def test_malformed_bodies_are_400_problems(
        self, client: Client, settings: Settings, database_url: str, overrides: dict[str, object]
    ) -> None:
        response = client.post(
            "/dining/restaurants", json=restaurant_body(**overrides), headers=owner(settings)
        )
        assert_problem(response, 400)
        _nothing_written(database_url)

    def test_a_slot_listed_twice_is_a_422_problem(
        self, client: Client, settings: Settings, database_url: str
    ) -> None:
        response = client.post(
            "/dining/restaurants",
            json=restaurant_body(slots=["19:00", "19:00"]),
            headers=owner(settings),
        )
        body = assert_problem(response, 422)
        assert body["type"] == "urn:haengbok:problem:dining-invalid-restaurant"
        assert "once" in body["detail"]
        _nothing_written(database_url)


class TestWhoMayRegister:
    def test_without_a_token_401(self, client: Client, database_url: str) -> None:
        assert_problem(client.post("/dining/restaurants", json=restaurant_body()), 401)
        _nothing_written(database_url)

    def test_a_customer_may_not_403(
        self, client: Client, settings: Settings, database_url: str
    ) -> None:
        response = client.post(
            "/dining/restaurants", json=restaurant_body(), headers=customer(settings)
        )
        assert_problem(response, 403)
        _nothing_written(database_url)

    def test_an_analyst_may_not_403(self, client: Client, settings: Settings) -> None:
        from api.auth import Role

        response = client.post(
            "/dining/restaurants", json=restaurant_body(), headers=bearer(settings, Role.ANALYST)
        )
        assert_problem(response, 403)


class TestAnAdminRegisters:
    """The issue's "owners (or admins)": an ops token registers a restaurant for a named
    owner, who then owns it; an owner registers only their own."""

    def test_ops_registers_a_restaurant_for_the_owner_it_names(
        self, client: Client, settings: Settings, database_url: str
    ) -> None:
        from api.auth import Role

        response = client.post(
            "/dining/restaurants",
            json=restaurant_body(owner="park"),
            headers=bearer(settings, Role.OPS, subject="admin-lee"),
        )

        assert response.status_code == 202, response.text
        assert response.json()["owner"] == "park"
        with psycopg.connect(database_url) as conn:
            event = conn.execute(
                "SELECT payload->>'owner', actor FROM outbox.event"
                " WHERE type = 'restaurant.RestaurantRegistered'"
            ).fetchone()
        # The owner owns it; the log says who registered it.
        assert event == ("park", "admin-lee")

    def test_ops_must_name_the_owner(
        self, client: Client, settings: Settings, database_url: str
    ) -> None:
        from api.auth import Role

        response = client.post(
            "/dining/restaurants", json=restaurant_body(), headers=bearer(settings, Role.OPS)
        )
        assert "owner" in assert_problem(response, 422)["detail"]
        _nothing_written(database_url)

    def test_an_owner_may_not_register_for_someone_else(
        self, client: Client, settings: Settings, database_url: str
    ) -> None:
        response = client.post(
            "/dining/restaurants", json=restaurant_body(owner="park"), headers=owner(settings)
        )
        assert_problem(response, 403)
        _nothing_written(database_url)

    def test_an_owner_may_name_themselves(self, client: Client, settings: Settings) -> None:
        response = client.post(
            "/dining/restaurants", json=restaurant_body(owner="kim"), headers=owner(settings)
        )
        assert response.status_code == 202, response.text
        assert response.json()["owner"] == "kim"
