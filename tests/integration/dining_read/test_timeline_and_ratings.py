"""My timeline (every message of my reservations) and the recommendation views."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from api.dining.views import RatingPrior, ranking
from domain.dining import messages as m
from outbox.envelope import Envelope
from projections.dining.customer_timeline import CustomerTimeline
from projections.dining.recommendation_views import RecommendationEntries, RestaurantRatings
from sql import query
from tests.integration.dining_read.support import Booking, catch_up, record, restaurant


def _timeline(url: str, reservation_id: uuid.UUID) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM customer_center.timeline WHERE reservation_id = %s"
            " ORDER BY global_position",
            [reservation_id],
        ).fetchall()


def _rating(url: str, restaurant_id: uuid.UUID) -> tuple[object, ...] | None:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT restaurant_name, rating_count, rating_sum FROM recommendation.restaurant_rating"
            " WHERE restaurant_id = %s",
            [restaurant_id],
        ).fetchone()


def _entries(url: str) -> dict[uuid.UUID, tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT reservation_id, restaurant_id, status FROM recommendation.entry_activity"
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in found}


class TestTimeline:
    def test_every_message_of_the_conversation_in_log_order_with_a_summary(
        self, database_url: str
    ) -> None:
        booking, other = Booking(), Booking(customer="bob")
        history = [booking.requested(), *booking.paid_and_confirmed(), *booking.cancelled()]
        record(database_url, restaurant(booking.restaurant_id, "Haengbok Table"))
        record(database_url, *history[:5])
        record(database_url, other.requested())
        record(database_url, *history[5:])

        catch_up(database_url, [CustomerTimeline()])

        entries = _timeline(database_url, booking.reservation_id)
        assert [e["type"] for e in entries] == [x.TYPE for x in history]
        assert [e["kind"] for e in entries] == [x.KIND for x in history]
        assert entries[0]["summary"] == (
            "Reservation requested at Haengbok Table on 2026-05-01 at 19:00 for 2"
            " (deposit 10,000 KRW)"
        )
        assert "Deposit of 10,000 KRW refunded" in [e["summary"] for e in entries]
        positions = [e["global_position"] for e in entries]
        assert positions == sorted(positions)
        assert len(_timeline(database_url, other.reservation_id)) == 1


class TestRatingsAndEntries:
    def test_ratings_add_up_per_restaurant_under_the_catalogue_name(
        self, database_url: str
    ) -> None:
        place = uuid.uuid4()
        record(database_url, restaurant(place, "Mokpo House"))
        visits = [Booking(restaurant_id=place, customer=f"c{i}") for i in range(3)]
        record(database_url, *(b.rated(score) for b, score in zip(visits, [5, 3, 4], strict=True)))

        catch_up(database_url, [RestaurantRatings()])

        assert _rating(database_url, place) == ("Mokpo House", 3, 12)

    def test_a_withdrawn_rating_no_longer_counts(self, database_url: str) -> None:
        # A rated reservation that was then marked a no-show (the party never came).
        place = uuid.uuid4()
        record(database_url, restaurant(place, "Mokpo House"))
        came, stayed_away = Booking(restaurant_id=place), Booking(restaurant_id=place)
        record(database_url, came.rated(3), stayed_away.rated(5))
        catch_up(database_url, [RestaurantRatings()])
        assert _rating(database_url, place) == ("Mokpo House", 2, 8)

        record(database_url, m.RatingWithdrawn(stayed_away.reservation_id, place, 5))
        catch_up(database_url, [RestaurantRatings(), CustomerTimeline()])

        assert _rating(database_url, place) == ("Mokpo House", 1, 3)
        [entry] = _timeline(database_url, stayed_away.reservation_id)[-1:]
        assert entry["summary"] == "Rating of 5/5 withdrawn: marked as a no-show"

    def test_a_rating_before_the_catalogue_entry_is_kept_and_named_later(
        self, database_url: str
    ) -> None:
        place = uuid.uuid4()
        record(database_url, Booking(restaurant_id=place).rated(5))
        catch_up(database_url, [RestaurantRatings()])
        unnamed = _rating(database_url, place)

        record(database_url, restaurant(place, "Late Listing"))
        catch_up(database_url, [RestaurantRatings()])

        assert unnamed == (None, 1, 5)
        assert _rating(database_url, place) == ("Late Listing", 1, 5)

    def test_entries_are_registered_rejected_or_deleted(self, database_url: str) -> None:
        kept, dropped, refused = Booking(), Booking(), Booking()
        record(
            database_url,
            m.RecommendationEntryRegistered(kept.reservation_id, kept.restaurant_id),
            m.RecommendationEntryRegistered(dropped.reservation_id, dropped.restaurant_id),
            m.RecommendationEntryRejected(refused.reservation_id, "overloaded"),
        )
        record(database_url, m.RecommendationEntryDeleted(dropped.reservation_id))

        catch_up(database_url, [RecommendationEntries()])

        assert _entries(database_url) == {
            kept.reservation_id: (kept.restaurant_id, "registered"),
            dropped.reservation_id: (dropped.restaurant_id, "deleted"),
            refused.reservation_id: (None, "rejected"),
        }

    def test_an_entrys_events_leave_the_same_row_in_one_batch_or_apart_in_any_order(
        self, database_url: str
    ) -> None:
        together, apart = Booking(), Booking()
        for booking in (together, apart):
            record(
                database_url,
                m.RecommendationEntryRegistered(booking.reservation_id, booking.restaurant_id),
                m.RecommendationEntryDeleted(booking.reservation_id),
            )
        with psycopg.connect(database_url) as conn, conn.cursor(row_factory=dict_row) as cur:
            logged = cur.execute(query("projection.batch"), {
                "after": 0, "upto": 10, "types": sorted(RecommendationEntries().message_types),
                "limit": 10,
            }).fetchall()  # fmt: skip
            envelopes = [Envelope.from_row(row) for row in logged]
            mine = {
                b.reservation_id: [e for e in envelopes if str(b.reservation_id) in e.stream]
                for b in (together, apart)
            }
            table = RecommendationEntries().table.identifier
            # The deletion first: the newest version still wins, the registration still names
            # the restaurant.
            RecommendationEntries().apply(conn, mine[together.reservation_id][::-1], table)
            for envelope in mine[apart.reservation_id]:
                RecommendationEntries().apply(conn, [envelope], table)
            rows = cur.execute(
                "SELECT reservation_id, restaurant_id, status, version, last_global_position"
                " FROM recommendation.entry_activity"
            ).fetchall()

        by_id = {r.pop("reservation_id"): r for r in rows}
        newest = {b.reservation_id: max(e.global_position or 0 for e in mine[b.reservation_id])
                  for b in (together, apart)}  # fmt: skip
        for booking in (together, apart):
            assert by_id[booking.reservation_id] == {
                "restaurant_id": booking.restaurant_id, "status": "deleted", "version": 2,
                "last_global_position": newest[booking.reservation_id],
            }  # fmt: skip


class TestRankingPrior:
    def test_a_weak_prior_near_the_top_lets_a_single_five_lead(self, database_url: str) -> None:
        lucky, steady = uuid.uuid4(), uuid.uuid4()
        record(database_url, restaurant(lucky, "Lucky"), restaurant(steady, "Steady"))
        record(database_url, Booking(restaurant_id=lucky).rated(5))
        record(database_url, *(Booking(restaurant_id=steady).rated(4) for _ in range(10)))
        catch_up(database_url, [RestaurantRatings(), RecommendationEntries()])

        async def rank(prior: RatingPrior) -> list[tuple[str | None, float]]:
            async with await psycopg.AsyncConnection.connect(database_url) as conn:
                found = await ranking(conn, prior, limit=10)
            return [(r.name, r.bayesian_average) for r in found]

        default = asyncio.run(rank(RatingPrior()))
        weak = asyncio.run(rank(RatingPrior(mean=4.5, weight=1)))

        assert [name for name, _ in default] == ["Steady", "Lucky"]
        assert [name for name, _ in weak] == ["Lucky", "Steady"]
        assert [score for _, score in weak] == pytest.approx([4.75, 44.5 / 11])
