"""Reads a client makes that went wrong: query parameters that reached PostgreSQL and failed
there as 500s, now 400s (a NUL character in a text, which PostgreSQL text cannot hold; a
number beyond a bigint, which offsets and log positions are compared with), and the
``Location`` of a reservation not projected yet, which answered 404."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.auth import Role
from haengbok.settings import Settings
from tests.integration.api.support import assert_problem, bearer
from tests.integration.dining_read.support import register_restaurant

Client = TestClient[Litestar]
TOO_BIG = "100000000000000000000"


def _customer(settings: Settings) -> dict[str, str]:
    return bearer(settings, Role.CUSTOMER, subject="alice")


def test_a_nul_in_a_text_parameter_is_a_400(client: Client, settings: Settings) -> None:
    response = client.get("/dining/restaurants?cuisine=%00", headers=_customer(settings))
    [error] = assert_problem(response, 400)["errors"]
    assert error["key"] == "cuisine"


@pytest.mark.parametrize(
    "path",
    [
        f"/dining/restaurants?offset={TOO_BIG}",
        f"/dining/customer-center/reservations?offset={TOO_BIG}",
        f"/dining/customer-center/timeline?after={TOO_BIG}",
        f"/dining/customer-center/reservations?min_position={TOO_BIG}",
    ],
)
def test_a_number_beyond_a_bigint_is_a_400(client: Client, settings: Settings, path: str) -> None:
    assert_problem(client.get(path, headers=_customer(settings)), 400)


def test_the_largest_bigint_is_still_taken(client: Client, settings: Settings) -> None:
    response = client.get(
        "/dining/restaurants?offset=9223372036854775807", headers=_customer(settings)
    )
    assert response.status_code == 200, response.text
    assert response.json()["items"] == []


class TestNotProjectedYet:
    """A reservation requested a moment ago, before the customer center projects it: its
    ``Location`` answers with what the reservation context holds, marked stale, not 404."""

    @pytest.fixture
    def written(self, database_url: str) -> dict[str, str]:
        restaurant = register_restaurant(database_url, "Kimchi House", owner="owner-k")
        reservation_id = str(uuid.uuid4())
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "INSERT INTO reservation.reservation (reservation_id, customer, restaurant_id,"
                " restaurant_name, date, slot, party_size, deposit_amount)"
                " VALUES (%s, 'alice', %s, 'Kimchi House', current_date + 3, '19:00', 2, 10000)",
                [reservation_id, restaurant.restaurant_id],
            )
        return {"reservation_id": reservation_id}

    def test_its_customer_reads_it_from_the_write_side_marked_stale(
        self, client: Client, settings: Settings, written: dict[str, str]
    ) -> None:
        rid = written["reservation_id"]
        response = client.get(f"/dining/reservations/{rid}", headers=_customer(settings))

        assert response.status_code == 200, response.text
        assert response.headers["x-read-model-stale"] == "true"
        state = response.json()
        assert (state["reservation_id"], state["status"], state["party_size"]) == (
            rid,
            "PENDING",
            2,
        )
        assert state["deposit"]["status"] is None and state["deposit"]["amount"] == 10_000
        assert state["restaurant_booking"] is None and state["log_position"] is None

        deposit = client.get(f"/dining/reservations/{rid}/deposit", headers=_customer(settings))
        assert deposit.status_code == 200, deposit.text
        assert deposit.headers["x-read-model-stale"] == "true"
        assert deposit.json()["status"] is None

    def test_the_restaurant_owner_reads_it_and_nobody_else(
        self, client: Client, settings: Settings, written: dict[str, str]
    ) -> None:
        path = f"/dining/reservations/{written['reservation_id']}"
        owner = bearer(settings, Role.RESTAURANT_OWNER, subject="owner-k")
        assert client.get(path, headers=owner).status_code == 200
        other_owner = bearer(settings, Role.RESTAURANT_OWNER, subject="owner-n")
        assert_problem(client.get(path, headers=other_owner), 404)
        bob = bearer(settings, Role.CUSTOMER, subject="bob")
        assert_problem(client.get(path, headers=bob), 404)
        assert_problem(client.get(f"{path}/deposit", headers=bob), 404)
