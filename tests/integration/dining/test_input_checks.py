"""Input that Litestar's own checks let through, refused with a 4xx that names the problem and
writes nothing: JSON values of the wrong type (its lax conversion turned "2" into 2), bodies
that are not JSON, and NUL characters (PostgreSQL text cannot hold them: they were 500s).
The query side's parameters: tests/integration/dining_read/test_query_input.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from haengbok.settings import Settings
from tests.integration.api.support import assert_problem
from tests.integration.dining.support import (
    Client,
    count_rows,
    customer,
    owner,
    register_restaurant,
    reservation_body,
    restaurant_body,
)


@pytest.fixture
def restaurant(client: Client, settings: Settings) -> dict[str, Any]:
    return register_restaurant(client, owner(settings), capacity_per_slot=4)


def _post_raw(client: Client, path: str, body: bytes, headers: dict[str, str], **more: str) -> Any:
    return client.post(
        path, content=body, headers={**headers, "Content-Type": "application/json", **more}
    )


class TestJsonTypes:
    @pytest.mark.parametrize(
        ("field", "value"),
        [("party_size", "2"), ("party_size", 2.0), ("date", 20261210), ("slot", 1900)],
    )
    def test_a_value_of_the_wrong_json_type_is_a_400_naming_the_field(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        restaurant: dict[str, Any],
        field: str,
        value: Any,
    ) -> None:
        body = {**reservation_body(restaurant["restaurant_id"]), field: value}

        response = client.post("/dining/reservations", json=body, headers=customer(settings))

        problem = assert_problem(response, 400)
        assert problem["type"] == "urn:haengbok:problem:validation-error"
        [error] = problem["errors"]
        assert (error["key"], error["source"]) == (field, "body")
        assert error["message"].startswith("Expected `")
        assert count_rows(database_url, "reservation.reservation") == 0

    def test_the_right_types_still_pass(
        self, client: Client, settings: Settings, restaurant: dict[str, Any]
    ) -> None:
        body = reservation_body(restaurant["restaurant_id"], party_size=2)
        response = client.post("/dining/reservations", json=body, headers=customer(settings))
        assert response.status_code == 202, response.text

    def test_numbers_given_as_text_are_refused_on_registration_too(
        self, client: Client, settings: Settings, database_url: str
    ) -> None:
        before = count_rows(database_url, "restaurant.restaurant")
        body = {**restaurant_body(), "capacity_per_slot": "4"}

        response = client.post("/dining/restaurants", json=body, headers=owner(settings))

        [error] = assert_problem(response, 400)["errors"]
        assert error["key"] == "capacity_per_slot"
        assert count_rows(database_url, "restaurant.restaurant") == before

    def test_a_nested_value_is_named_by_its_path(
        self, client: Client, settings: Settings, database_url: str
    ) -> None:
        body = {**restaurant_body(), "slots": ["18:00", 1900]}

        response = client.post("/dining/restaurants", json=body, headers=owner(settings))

        [error] = assert_problem(response, 400)["errors"]
        assert error["key"] == "slots[1]"


class TestMediaType:
    def test_a_body_that_is_not_declared_json_is_a_415(
        self, client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        body = json.dumps(reservation_body(restaurant["restaurant_id"])).encode()

        response = client.post(
            "/dining/reservations",
            content=body,
            headers={**customer(settings), "Content-Type": "text/plain"},
        )

        problem = assert_problem(response, 415)
        assert "application/json" in problem["detail"]
        assert count_rows(database_url, "reservation.reservation") == 0

    @pytest.mark.parametrize(
        "content_type", ["application/json; charset=utf-8", "application/problem+json"]
    )
    def test_json_media_types_with_parameters_or_suffixes_pass(
        self, client: Client, settings: Settings, restaurant: dict[str, Any], content_type: str
    ) -> None:
        body = json.dumps(reservation_body(restaurant["restaurant_id"])).encode()
        response = client.post(
            "/dining/reservations",
            content=body,
            headers={**customer(settings), "Content-Type": content_type},
        )
        assert response.status_code == 202, response.text


class TestNulCharacters:
    def test_a_nul_in_a_body_text_is_a_400(self, client: Client, settings: Settings) -> None:
        raw = json.dumps({**restaurant_body(), "name": "a\u0000b"}).encode()
        assert b"\\u0000" in raw

        response = _post_raw(client, "/dining/restaurants", raw, owner(settings))

        [error] = assert_problem(response, 400)["errors"]
        assert error["key"] == "name"  # refused by the name's pattern (no control characters)

    def test_a_nul_in_a_list_of_texts_is_a_400(self, client: Client, settings: Settings) -> None:
        raw = json.dumps({**restaurant_body(), "slots": ["18:00\u0000"]}).encode()
        assert_problem(_post_raw(client, "/dining/restaurants", raw, owner(settings)), 400)


class TestBookingHorizon:
    def test_a_date_beyond_a_year_ahead_is_refused_and_nothing_is_written(
        self, client: Client, settings: Settings, database_url: str, restaurant: dict[str, Any]
    ) -> None:
        body = reservation_body(restaurant["restaurant_id"], date="9999-12-31")

        response = client.post("/dining/reservations", json=body, headers=customer(settings))

        problem = assert_problem(response, 422)
        assert "365 days ahead" in problem["detail"]
        assert count_rows(database_url, "reservation.reservation") == 0


class TestTextThatDisplaysAsSomethingElse:
    @pytest.mark.parametrize("name", ["Kimchi\u202eesuoH", "Kimchi\nHouse", "Kim\x07chi"])
    def test_control_characters_and_bidi_overrides_in_a_name_are_a_400(
        self, client: Client, settings: Settings, database_url: str, name: str
    ) -> None:
        before = count_rows(database_url, "restaurant.restaurant")
        response = client.post(
            "/dining/restaurants", json=restaurant_body(name=name), headers=owner(settings)
        )
        [error] = assert_problem(response, 400)["errors"]
        assert error["key"] == "name"
        assert count_rows(database_url, "restaurant.restaurant") == before

    def test_a_name_in_any_script_is_fine(self, client: Client, settings: Settings) -> None:
        response = client.post(
            "/dining/restaurants",
            json=restaurant_body(name="행복 식당 · Café"),
            headers=owner(settings),
        )
        assert response.status_code == 202, response.text
