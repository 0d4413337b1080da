"""A restaurant's owner lists the reservations of a day: whom to expect and whose visit to
record (GET /dining/restaurants/{id}/reservations). Only the owner (or ops) sees them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from api.auth import Role
from api.dining.commands import controllers
from api.dining.queries import QUERY_CONTROLLERS
from haengbok.bootstrap import problems
from haengbok.settings import Settings
from tests.integration.api.support import assert_problem, bearer
from tests.integration.dining.conftest import MovableClock
from tests.integration.dining.support import (
    customer,
    days_ahead,
    owner,
    register_restaurant,
    reserve,
)

Client = TestClient[Litestar]


@pytest.fixture
def both(settings: Settings, clock: MovableClock) -> Iterator[Client]:
    """Commands and queries in one app, as `haengbok api` serves them."""
    app = create_app(
        settings, controllers=controllers(clock, alongside=QUERY_CONTROLLERS), problems=problems()
    )
    with TestClient(app) as client:
        yield client


@pytest.fixture
def day_of(both: Client, settings: Settings) -> dict[str, Any]:
    """kim's restaurant with slots 18:00 and 19:00: three reservations on one day (two at
    19:00, one at 18:00), one the day after."""
    place = register_restaurant(both, owner(settings), slots=["18:00", "19:00"])
    day, later = days_ahead(3), days_ahead(4)
    rid = place["restaurant_id"]
    ids = {
        "19a": reserve(both, customer(settings, "ann"), rid, date=day.isoformat(), slot="19:00"),
        "18": reserve(both, customer(settings, "bo"), rid, date=day.isoformat(), slot="18:00"),
        "19b": reserve(both, customer(settings, "cy"), rid, date=day.isoformat(), slot="19:00"),
        "next": reserve(both, customer(settings, "di"), rid, date=later.isoformat()),
    }
    return {"restaurant_id": rid, "day": day, "ids": ids}


def _path(restaurant_id: str) -> str:
    return f"/dining/restaurants/{restaurant_id}/reservations"


class TestTheOwnersDay:
    def test_the_days_reservations_by_slot_as_soon_as_they_are_made(
        self, both: Client, settings: Settings, day_of: dict[str, Any]
    ) -> None:
        response = both.get(
            _path(day_of["restaurant_id"]),
            params={"date": day_of["day"].isoformat()},
            headers=owner(settings),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        ids = day_of["ids"]
        nineteen = sorted([ids["19a"], ids["19b"]])
        assert [r["reservation_id"] for r in body["items"]] == [ids["18"], *nineteen]
        first = body["items"][0]
        assert (first["customer"], first["slot"], first["party_size"], first["status"]) == (
            "bo", "18:00", 2, "PENDING",
        )  # fmt: skip
        assert body["next_after"] is None

    def test_pages_by_cursor_and_filters_by_status(
        self, both: Client, settings: Settings, database_url: str, day_of: dict[str, Any]
    ) -> None:
        params = {"date": day_of["day"].isoformat(), "limit": 2}
        first = both.get(_path(day_of["restaurant_id"]), params=params, headers=owner(settings))
        second = both.get(
            _path(day_of["restaurant_id"]),
            params={**params, "after": first.json()["next_after"]},
            headers=owner(settings),
        )
        seen = [r["reservation_id"] for r in first.json()["items"] + second.json()["items"]]
        assert len(seen) == len(set(seen)) == 3
        assert second.json()["next_after"] is None

        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE reservation.reservation SET status = 'CONFIRMED' WHERE reservation_id = %s",
                [day_of["ids"]["18"]],
            )
        confirmed = both.get(
            _path(day_of["restaurant_id"]),
            params={"date": day_of["day"].isoformat(), "status": "CONFIRMED"},
            headers=owner(settings),
        ).json()
        assert [r["reservation_id"] for r in confirmed["items"]] == [day_of["ids"]["18"]]

    def test_ops_may_read_it_too(
        self, both: Client, settings: Settings, day_of: dict[str, Any]
    ) -> None:
        response = both.get(
            _path(day_of["restaurant_id"]),
            params={"date": day_of["day"].isoformat()},
            headers=bearer(settings, Role.OPS, subject="admin"),
        )
        assert len(response.json()["items"]) == 3


class TestWhoMayNot:
    def test_another_owner_gets_404_as_for_an_unknown_restaurant(
        self, both: Client, settings: Settings, day_of: dict[str, Any]
    ) -> None:
        params = {"date": day_of["day"].isoformat()}
        theirs = both.get(_path(day_of["restaurant_id"]), params=params,
                          headers=owner(settings, "park"))  # fmt: skip
        unknown = both.get(_path(str(uuid.uuid4())), params=params, headers=owner(settings))
        assert_problem(theirs, 404)
        assert_problem(unknown, 404)
        assert theirs.json()["title"] == unknown.json()["title"]

    def test_a_customer_is_refused(
        self, both: Client, settings: Settings, day_of: dict[str, Any]
    ) -> None:
        response = both.get(
            _path(day_of["restaurant_id"]),
            params={"date": day_of["day"].isoformat()},
            headers=customer(settings, "ann"),
        )
        assert_problem(response, 403)

    @pytest.mark.parametrize(
        "params",
        [{}, {"date": "tomorrow"}, {"date": "2026-12-05", "after": "19:00~nope"},
         {"date": "2026-12-05", "status": "LATE"}, {"date": "2026-12-05", "limit": 0}],
        ids=["no date", "bad date", "bad cursor", "bad status", "limit 0"],
    )  # fmt: skip
    def test_bad_queries_are_400_problems(
        self, both: Client, settings: Settings, day_of: dict[str, Any], params: dict[str, Any]
    ) -> None:
        response = both.get(_path(day_of["restaurant_id"]), params=params,
                            headers=owner(settings))  # fmt: skip
        assert_problem(response, 400)
