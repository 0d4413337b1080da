"""The query routes in the OpenAPI document, alone and beside Dining's command routes."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Router
from litestar.di import Provide
from litestar.testing import TestClient

from api.app import create_app
from api.dining.commands import ReservationCommands, RestaurantCommands, dining_command
from api.dining.queries import DINING, QUERY_CONTROLLERS, controllers
from domain.dining.clock import utc_now
from haengbok.settings import Settings

QUERY_OPERATIONS = {
    ("/dining/restaurants", "get"): "listRestaurants",
    ("/dining/restaurants/{restaurant_id}", "get"): "getRestaurant",
    ("/dining/restaurants/{restaurant_id}/reservations", "get"): "listRestaurantReservations",
    ("/dining/reservations/{reservation_id}", "get"): "getReservation",
    ("/dining/reservations/{reservation_id}/deposit", "get"): "getReservationDeposit",
    ("/dining/customer-center/reservations", "get"): "listMyReservations",
    ("/dining/customer-center/timeline", "get"): "getMyTimeline",
    ("/dining/recommendations", "get"): "listRecommendations",
}


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {
        (path, method): operation["operationId"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "operationId" in operation
    }


def _document(app: Litestar) -> dict[str, Any]:
    with TestClient(app) as client:
        response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = msgspec.json.decode(response.content)
    return document


class TestQueryRoutesInOpenApi:
    def test_every_query_route_is_documented_with_min_position(self, settings: Settings) -> None:
        document = _document(create_app(settings, controllers=controllers()))

        dining = {k: v for k, v in _operations(document).items() if k[0].startswith(DINING)}
        assert dining == QUERY_OPERATIONS
        for (path, method), _ in QUERY_OPERATIONS.items():
            names = {p["name"] for p in document["paths"][path][method].get("parameters", [])}
            assert "min_position" in names, path

    def test_served_in_one_dining_router_with_the_commands(self, settings: Settings) -> None:
        # Litestar refuses GET and POST /dining/restaurants from two separate route layers.
        dining = Router(
            path=DINING,
            route_handlers=[RestaurantCommands, ReservationCommands, *QUERY_CONTROLLERS],
            dependencies={"dining": Provide(dining_command(utc_now), sync_to_thread=False)},
        )

        document = _document(create_app(settings, controllers=[dining]))

        operations = _operations(document)
        assert QUERY_OPERATIONS.items() <= operations.items()
        assert operations[("/dining/restaurants", "post")] == "registerRestaurant"
        assert len(set(operations.values())) == len(operations)
