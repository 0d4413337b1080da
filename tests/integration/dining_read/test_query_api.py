"""The Dining query API over HTTP: who may read what, pages, and the merged views."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.auth import Role
from domain.dining import messages as m
from haengbok.settings import Settings
from projections.projector import Projector
from tests.integration.api.support import assert_problem, bearer
from tests.integration.dining_read.support import (
    Booking,
    catch_up,
    record,
    register_restaurant,
)

Client = TestClient[Litestar]
ROUTES = [
    "/dining/restaurants",
    f"/dining/restaurants/{uuid.uuid4()}",
    f"/dining/reservations/{uuid.uuid4()}",
    f"/dining/reservations/{uuid.uuid4()}/deposit",
    "/dining/customer-center/reservations",
    "/dining/customer-center/timeline",
    "/dining/recommendations",
]


def _as(settings: Settings, subject: str, *roles: Role) -> dict[str, str]:
    return bearer(settings, *(roles or (Role.CUSTOMER,)), subject=subject)


@pytest.fixture
def world(database_url: str, dining_projectors: list[Projector]) -> dict[str, Any]:
    """Two restaurants; alice has a confirmed and a cancelled reservation, bob one pending."""
    kimchi = register_restaurant(database_url, "Kimchi House", owner="owner-k")
    noodle = register_restaurant(database_url, "Noodle Bar", owner="owner-n", cuisine="chinese")
    confirmed = Booking(restaurant_id=kimchi.restaurant_id, restaurant_name="Kimchi House")
    cancelled = Booking(restaurant_id=noodle.restaurant_id, restaurant_name="Noodle Bar")
    bobs = Booking(customer="bob", restaurant_id=kimchi.restaurant_id)
    record(database_url, confirmed.requested(), *confirmed.paid_and_confirmed())
    record(database_url, cancelled.requested(), *cancelled.paid_and_confirmed())
    record(database_url, *cancelled.cancelled())
    record(database_url, bobs.requested())
    catch_up(database_url, dining_projectors)
    return {"kimchi": kimchi, "confirmed": confirmed, "cancelled": cancelled, "bobs": bobs}


class TestAccess:
    @pytest.mark.parametrize("path", ROUTES)
    def test_without_a_token_is_401(self, client: Client, path: str) -> None:
        assert_problem(client.get(path), 401)

    @pytest.mark.parametrize("path", ROUTES[2:6])
    def test_an_analyst_may_not_read_customer_state(
        self, client: Client, settings: Settings, path: str
    ) -> None:
        assert_problem(client.get(path, headers=_as(settings, "ana", Role.ANALYST)), 403)

    def test_a_bad_min_position_is_a_validation_problem(
        self, client: Client, settings: Settings
    ) -> None:
        response = client.get(
            "/dining/customer-center/reservations?min_position=0", headers=_as(settings, "alice")
        )
        body = assert_problem(response, 400)
        assert body["errors"][0]["key"] == "min_position"


class TestRestaurants:
    def test_pages_through_the_catalogue_by_name(
        self, client: Client, settings: Settings, world: dict[str, Any]
    ) -> None:
        register_restaurant(settings.database_url or "", "Anchovy Grill")
        auth = _as(settings, "ana", Role.ANALYST)

        first = client.get("/dining/restaurants?limit=2", headers=auth).json()
        second = client.get("/dining/restaurants?limit=2&offset=2", headers=auth).json()

        assert [r["name"] for r in first["items"]] == ["Anchovy Grill", "Kimchi House"]
        assert first["next_offset"] == 2
        assert [r["name"] for r in second["items"]] == ["Noodle Bar"]
        assert second["next_offset"] is None
        assert first["items"][1]["slots"] == ["18:00", "19:00"]
        assert first["items"][1]["deposit_amount"] == 10_000
        assert first["items"][1]["capacity_per_slot"] == 20

    def test_one_restaurant_or_404(
        self, client: Client, settings: Settings, world: dict[str, Any]
    ) -> None:
        auth = _as(settings, "alice")
        kimchi = world["kimchi"].restaurant_id

        found = client.get(f"/dining/restaurants/{kimchi}", headers=auth)

        assert found.status_code == 200
        assert found.json()["name"] == "Kimchi House"
        assert_problem(client.get(f"/dining/restaurants/{uuid.uuid4()}", headers=auth), 404)


class TestOneReservation:
    def test_its_customer_reads_the_merged_state(
        self, client: Client, settings: Settings, world: dict[str, Any]
    ) -> None:
        booking = world["confirmed"]

        body = client.get(
            f"/dining/reservations/{booking.reservation_id}", headers=_as(settings, "alice")
        ).json()

        assert body["status"] == "CONFIRMED"
        assert body["deposit"]["status"] == "PAID"
        assert (body["restaurant_booking"], body["recommendation"]) == ("accepted", "registered")
        assert (body["restaurant_name"], body["date"], body["slot"]) == (
            "Kimchi House",
            "2026-05-01",
            "19:00",
        )

    def test_another_customer_gets_404_as_if_it_did_not_exist(
        self, client: Client, settings: Settings, world: dict[str, Any]
    ) -> None:
        rid = world["confirmed"].reservation_id
        for path in (f"/dining/reservations/{rid}", f"/dining/reservations/{rid}/deposit"):
            theirs = client.get(path, headers=_as(settings, "bob"))
            missing = client.get(
                path.replace(str(rid), str(uuid.uuid4())), headers=_as(settings, "bob")
            )
            assert assert_problem(theirs, 404)["type"] == assert_problem(missing, 404)["type"]
            # The commands' type and title for an unknown reservation (api.dining.problems).
            assert assert_problem(missing, 404)["type"] == (
                "urn:haengbok:problem:dining-reservation-not-found"
            )
            assert assert_problem(missing, 404)["title"] == "Reservation not found"

    def test_the_restaurants_owner_reads_it_and_another_owner_does_not(
        self, client: Client, settings: Settings, world: dict[str, Any]
    ) -> None:
        rid = world["confirmed"].reservation_id
        path = f"/dining/reservations/{rid}"

        owner = client.get(path, headers=_as(settings, "owner-k", Role.RESTAURANT_OWNER))
        other = client.get(path, headers=_as(settings, "owner-n", Role.RESTAURANT_OWNER))

        assert owner.status_code == 200
        assert owner.json()["customer"] == "alice"
        assert_problem(other, 404)

    def test_the_deposit_status_follows_payment_and_refund(
        self, client: Client, settings: Settings, world: dict[str, Any]
    ) -> None:
        auth = _as(settings, "alice")
        paid = world["confirmed"].reservation_id
        refunded = world["cancelled"].reservation_id
        unpaid = world["bobs"].reservation_id

        paid_body = client.get(f"/dining/reservations/{paid}/deposit", headers=auth).json()
        body = client.get(f"/dining/reservations/{refunded}/deposit", headers=auth).json()
        pending = client.get(
            f"/dining/reservations/{unpaid}/deposit", headers=_as(settings, "bob")
        ).json()

        assert paid_body["reservation_id"] == str(paid)
        assert (paid_body["status"], paid_body["amount"], paid_body["reason"]) == (
            "PAID",
            10_000,
            None,
        )
        assert (body["status"], body["amount"]) == ("REFUNDED", 10_000)
        assert body["updated_at"] is not None
        assert (pending["status"], pending["amount"]) == (None, 10_000)


class TestCustomerCenter:
    def test_my_reservations_newest_first_in_pages_and_only_mine(
        self, client: Client, settings: Settings, world: dict[str, Any]
    ) -> None:
        auth = _as(settings, "alice")

        first = client.get("/dining/customer-center/reservations?limit=1", headers=auth).json()
        second = client.get(
            "/dining/customer-center/reservations?limit=1&offset=1", headers=auth
        ).json()
        bobs = client.get("/dining/customer-center/reservations", headers=_as(settings, "bob"))

        assert [r["reservation_id"] for r in first["items"] + second["items"]] == [
            str(world["cancelled"].reservation_id),
            str(world["confirmed"].reservation_id),
        ]
        assert (first["next_offset"], second["next_offset"]) == (1, None)
        assert first["items"][0]["status"] == "CANCELLED"
        assert [r["customer"] for r in bobs.json()["items"]] == ["bob"]

    def test_paging_by_cursor_skips_what_was_made_meanwhile_and_repeats_nothing(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        dining_projectors: list[Projector],
        world: dict[str, Any],
    ) -> None:
        auth = _as(settings, "alice")
        path = "/dining/customer-center/reservations"
        first = client.get(f"{path}?limit=1", headers=auth).json()
        assert first["items"][0]["reservation_id"] == str(world["cancelled"].reservation_id)
        assert first["next_after"] is not None

        # A new reservation while alice pages: by offset it would push "cancelled" onto the
        # second page again.
        newer = Booking(restaurant_id=world["kimchi"].restaurant_id)
        record(database_url, newer.requested())
        catch_up(database_url, dining_projectors)
        by_offset = client.get(f"{path}?limit=1&offset=1", headers=auth).json()
        assert by_offset["items"][0]["reservation_id"] == str(world["cancelled"].reservation_id)

        second = client.get(
            path, params={"limit": 1, "after": first["next_after"]}, headers=auth
        ).json()
        assert [r["reservation_id"] for r in second["items"]] == [
            str(world["confirmed"].reservation_id)
        ]
        assert (second["next_after"], second["next_offset"]) == (None, None)

    @pytest.mark.parametrize(
        ("query", "slug"),
        [
            ({"after": "not-a-cursor"}, "validation-error"),
            ({"after": f"2026-13-01T00:00:00Z~{uuid.uuid4()}"}, "invalid-cursor"),
            ({"after": f"-~{uuid.uuid4()}", "offset": 1}, "offset-and-cursor"),
        ],
    )
    def test_a_bad_cursor_is_a_400_problem(
        self, client: Client, settings: Settings, query: dict[str, Any], slug: str
    ) -> None:
        response = client.get(
            "/dining/customer-center/reservations", params=query, headers=_as(settings, "alice")
        )
        assert_problem(response, 400)
        assert response.json()["type"].endswith(slug), response.json()

    def test_my_timeline_of_one_reservation_in_log_order(
        self, client: Client, settings: Settings, world: dict[str, Any]
    ) -> None:
        booking = world["cancelled"]
        history = [booking.requested(), *booking.paid_and_confirmed(), *booking.cancelled()]

        body = client.get(
            f"/dining/customer-center/timeline?reservation_id={booking.reservation_id}",
            headers=_as(settings, "alice"),
        ).json()

        assert [e["type"] for e in body["items"]] == [x.TYPE for x in history]
        assert body["items"][-1]["summary"] == "Removed from recommendations"
        assert body["next_after"] is None

    def test_my_whole_timeline_in_pages(
        self, client: Client, settings: Settings, world: dict[str, Any]
    ) -> None:
        auth = _as(settings, "alice")
        seen: list[dict[str, Any]] = []
        after: int | None = 0
        while after is not None:
            page = client.get(
                f"/dining/customer-center/timeline?limit=10&after={after}", headers=auth
            ).json()
            seen += page["items"]
            after = page["next_after"]

        mine = {str(world["confirmed"].reservation_id), str(world["cancelled"].reservation_id)}
        assert {e["reservation_id"] for e in seen} == mine
        assert len(seen) == 11 + 18
        positions = [e["log_position"] for e in seen]
        assert positions == sorted(set(positions))

    def test_the_timeline_of_another_customers_reservation_is_404(
        self, client: Client, settings: Settings, world: dict[str, Any]
    ) -> None:
        rid = world["bobs"].reservation_id
        response = client.get(
            f"/dining/customer-center/timeline?reservation_id={rid}",
            headers=_as(settings, "alice"),
        )
        assert_problem(response, 404)


class TestRecommendations:
    def test_many_good_ratings_outrank_a_single_perfect_one(
        self,
        client: Client,
        settings: Settings,
        database_url: str,
        dining_projectors: list[Projector],
    ) -> None:
        url = database_url
        lucky = register_restaurant(url, "One Review Wonder").restaurant_id
        steady = register_restaurant(url, "Steady Favourite").restaurant_id
        register_restaurant(url, "Brand New")
        record(url, Booking(restaurant_id=lucky).rated(5))
        regulars = [Booking(restaurant_id=steady, customer=f"c{i}") for i in range(10)]
        record(url, *(b.rated(4) for b in regulars))
        record(url, *(m.RecommendationEntryRegistered(b.reservation_id, steady) for b in regulars))
        record(url, m.RecommendationEntryDeleted(regulars[0].reservation_id))
        catch_up(url, dining_projectors)

        body = client.get("/dining/recommendations?limit=2", headers=_as(settings, "ana")).json()

        assert (body["prior_mean"], body["prior_weight"]) == (3.0, 5.0)
        top, second = body["items"]
        assert (top["name"], top["rank"], top["rating_count"]) == ("Steady Favourite", 1, 10)
        assert top["average"] == 4.0
        assert top["bayesian_average"] == pytest.approx((5 * 3 + 40) / 15)
        assert top["active_entries"] == 9
        assert (second["name"], second["rating_count"], second["average"]) == (
            "One Review Wonder",
            1,
            5.0,
        )
        assert second["bayesian_average"] == pytest.approx((5 * 3 + 5) / 6)
        assert second["active_entries"] == 0
        # The list goes on a page at a time, ranks counting on.
        rest = client.get(
            "/dining/recommendations?limit=2&offset=1", headers=_as(settings, "ana")
        ).json()["items"]
        assert [(r["rank"], r["name"]) for r in rest] == [
            (2, "One Review Wonder"),
            (3, "Brand New"),
        ]
