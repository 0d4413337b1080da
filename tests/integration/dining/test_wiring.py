"""The composition root serves Dining's commands and queries side by side under /dining."""

from __future__ import annotations

from litestar.testing import TestClient

from haengbok.bootstrap import build_api
from haengbok.settings import Settings
from tests.integration.dining.support import customer, owner, restaurant_body


class TestBootstrap:
    def test_a_registered_restaurant_is_read_back_at_its_location(self, settings: Settings) -> None:
        with TestClient(build_api(settings)) as client:
            created = client.post(
                "/dining/restaurants", json=restaurant_body(), headers=owner(settings)
            )
            assert created.status_code == 202, created.text

            read = client.get(created.headers["location"], headers=customer(settings))

        assert read.status_code == 200, read.text
        accepted = created.json()
        del accepted["log_position"]
        assert {k: v for k, v in read.json().items() if k != "log_position"} == accepted

    def test_the_openapi_document_lists_every_dining_command(self, settings: Settings) -> None:
        with TestClient(build_api(settings)) as client:
            document = client.get("/schema/openapi.json").json()
        operations = {
            op["operationId"] for path in document["paths"].values() for op in path.values()
        }
        assert {
            "registerRestaurant",
            "requestReservation",
            "cancelReservation",
            "recordVisit",
            "rateReservation",
        } <= operations
