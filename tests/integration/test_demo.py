"""`haengbok up` loads demo restaurants once and prints a walk-through that uses them."""

from __future__ import annotations

import psycopg

from haengbok.demo import DEMO_OWNER, RESTAURANTS, load_demo, walkthrough


class TestDemoData:
    def test_loads_the_restaurants_once_with_their_events(self, database_url: str) -> None:
        first = load_demo(database_url)
        second = load_demo(database_url)
        assert len(first) == len(RESTAURANTS)
        assert sorted(second) == sorted(first), "a second `up` reuses the data"
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT count(*) FROM restaurant.restaurant WHERE owner = %s", [DEMO_OWNER]
            ).fetchone()
            events = conn.execute(
                "SELECT count(*) FROM outbox.event WHERE type = 'restaurant.RestaurantRegistered'"
            ).fetchone()
        assert rows == (len(RESTAURANTS),)
        assert events == (len(RESTAURANTS),)

    def test_walkthrough_uses_a_demo_restaurant_and_every_step_of_the_seed(
        self, database_url: str
    ) -> None:
        restaurant_id = load_demo(database_url)[0]
        text = walkthrough("http://127.0.0.1:8000", restaurant_id)
        assert str(restaurant_id) in text
        for path in ("/dining/reservations", "/deposit", "/cancel", "/customer-center/timeline",
                     "/dining/recommendations", "/rating", "/ops/overview"):  # fmt: skip
            assert path in text
