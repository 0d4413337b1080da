"""Rebuilding every Dining read model from the log gives the rows catching up gave."""

from __future__ import annotations

import psycopg

from domain.dining import messages as m
from projections.projector import Projector
from projections.rebuild import rebuild
from sql.schema_snapshot import snapshot
from tests.integration.dining_read.support import Booking, catch_up, record, restaurant, rows

# A column every table of its projector orders by uniquely.
_KEYS = {
    "dining_customer_reservations": "reservation_id",
    "dining_customer_timeline": "global_position",
    "dining_restaurant_ratings": "restaurant_id",
    "dining_recommendation_entries": "reservation_id",
}


def _history(url: str) -> None:
    """Interleaved reservations: finished, cancelled, rejected, rated, and one seen partially."""
    place = Booking().restaurant_id
    record(url, restaurant(place, "Rebuild Bistro"))
    bookings = [Booking(restaurant_id=place, customer=f"c{i % 3}") for i in range(6)]
    record(url, *(b.requested() for b in bookings))
    for i, booking in enumerate(bookings):
        record(url, *booking.paid_and_confirmed())
        if i % 3 == 0:
            record(url, *booking.cancelled())
        else:
            record(url, m.VisitRecorded(booking.reservation_id, place, "COMPLETED"))
            record(url, booking.rated(3 + i % 3, f"visit {i}"))
    lonely = Booking(restaurant_id=place)
    record(url, m.DepositFailed(lonely.reservation_id, "declined"))


def _schema(url: str) -> str:
    with psycopg.connect(url) as conn:
        return snapshot(conn)


class TestRebuild:
    def test_each_rebuilt_table_equals_the_caught_up_one(
        self, database_url: str, dining_projectors: list[Projector]
    ) -> None:
        _history(database_url)
        catch_up(database_url, dining_projectors)
        before = {p.name: rows(database_url, p.table, _KEYS[p.name]) for p in dining_projectors}
        schema = _schema(database_url)

        for projector in dining_projectors:
            rebuild(lambda: psycopg.connect(database_url), projector, batch_size=7)

        after = {p.name: rows(database_url, p.table, _KEYS[p.name]) for p in dining_projectors}
        assert after == before
        assert len(before["dining_customer_reservations"]) == 7
        assert all(before.values())
        # The rebuilt tables come from the same DDL as the migrated ones: same names, indexes.
        assert _schema(database_url) == schema
