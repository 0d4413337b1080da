"""Customer center "my reservations": one merged row per reservation, whatever arrives when."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from domain.dining import messages as m
from outbox.envelope import Envelope
from projections.dining.customer_reservations import CUSTOMER_RESERVATIONS, CustomerReservations
from projections.projector import Table
from sql import query
from tests.integration.dining_read.support import Booking, catch_up, record, row

PROJECTOR = CustomerReservations()


def _project(url: str) -> None:
    catch_up(url, [PROJECTOR])


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT count(*) FROM customer_center.reservation").fetchone()
    assert found is not None
    return int(found[0])


def _envelopes(url: str) -> list[Envelope]:
    """Every handled event of the log, as the runner would read them."""
    params = {"after": 0, "upto": 10**9, "types": sorted(PROJECTOR.message_types), "limit": 10**6}
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        return [Envelope.from_row(r) for r in cur.execute(query("projection.batch"), params)]


def _apply_into_twin(url: str, envelopes: list[Envelope]) -> dict[str, Any]:
    """Apply ``envelopes`` as given into a fresh twin table; its single row."""
    twin = Table("customer_center", f"twin_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        PROJECTOR.create_table(conn, twin.identifier)
        PROJECTOR.apply(conn, envelopes, twin.identifier)
        found = cur.execute(sql.SQL("SELECT * FROM {}").format(twin.identifier)).fetchall()
    assert len(found) == 1
    return found[0]


class TestOneRowPerReservation:
    def test_the_whole_happy_path_merges_into_one_confirmed_row(self, database_url: str) -> None:
        booking = Booking()
        record(database_url, booking.requested())
        record(database_url, *booking.paid_and_confirmed())

        _project(database_url)

        found = row(database_url, CUSTOMER_RESERVATIONS, booking.reservation_id)
        assert _count(database_url) == 1
        assert found is not None
        assert (found["customer"], found["restaurant_name"], found["party_size"]) == (
            "alice",
            "Haengbok Table",
            2,
        )
        assert (found["reserved_date"], found["slot"]) == (booking.date, booking.slot)
        assert found["status"] == "CONFIRMED"
        assert found["deposit_status"] == "PAID"
        assert found["deposit_amount"] == 10_000
        assert found["booking_status"] == "accepted"
        assert found["recommendation_status"] == "registered"
        assert found["requested_at"] <= found["deposit_updated_at"] <= found["updated_at"]

    def test_cancelling_refunds_releases_and_deletes_in_the_same_row(
        self, database_url: str
    ) -> None:
        booking = Booking()
        record(database_url, booking.requested(), *booking.paid_and_confirmed())
        _project(database_url)
        record(database_url, *booking.cancelled())

        _project(database_url)

        found = row(database_url, CUSTOMER_RESERVATIONS, booking.reservation_id)
        assert found is not None
        assert _count(database_url) == 1
        assert (found["status"], found["deposit_status"]) == ("CANCELLED", "REFUNDED")
        assert (found["booking_status"], found["recommendation_status"]) == (
            "released",
            "deleted",
        )

    def test_a_failed_deposit_rejects_with_its_reasons(self, database_url: str) -> None:
        booking = Booking()
        rid = booking.reservation_id
        record(
            database_url,
            booking.requested(),
            m.DepositFailed(rid, "card declined"),
            m.ReservationRejected(rid, "the deposit was not paid"),
        )

        _project(database_url)

        found = row(database_url, CUSTOMER_RESERVATIONS, rid)
        assert found is not None
        assert (found["status"], found["reject_reason"]) == ("REJECTED", "the deposit was not paid")
        assert (found["deposit_status"], found["deposit_reason"]) == ("FAILED", "card declined")

    def test_a_visit_and_a_rating_complete_the_row(self, database_url: str) -> None:
        booking = Booking()
        rid = booking.reservation_id
        record(database_url, booking.requested(), *booking.paid_and_confirmed())
        record(
            database_url,
            m.VisitRecorded(rid, booking.restaurant_id, "COMPLETED"),
            booking.rated(4, "good soup"),
        )

        _project(database_url)

        found = row(database_url, CUSTOMER_RESERVATIONS, rid)
        assert found is not None
        assert found["status"] == "COMPLETED"
        assert (found["rating_score"], found["rating_comment"]) == (4, "good soup")
        assert found["rated_at"] is not None


class TestMissingRowsAndOrder:
    def test_facts_before_the_request_start_the_row_and_the_request_completes_it(
        self, database_url: str
    ) -> None:
        booking = Booking()
        rid, rest = booking.reservation_id, booking.restaurant_id
        record(database_url, m.DepositPaid(rid, 10_000, "psp"), m.ReservationAccepted(rid, rest))
        _project(database_url)
        partial = row(database_url, CUSTOMER_RESERVATIONS, rid)

        record(database_url, booking.requested())
        _project(database_url)

        assert partial is not None
        assert (partial["customer"], partial["status"], partial["deposit_status"]) == (
            None,
            None,
            "PAID",
        )
        found = row(database_url, CUSTOMER_RESERVATIONS, rid)
        assert found is not None
        assert (found["customer"], found["status"], found["deposit_status"]) == (
            "alice",
            "PENDING",
            "PAID",
        )
        assert found["booking_status"] == "accepted"
        assert _count(database_url) == 1

    def test_events_applied_in_any_order_give_the_row_of_log_order(self, database_url: str) -> None:
        booking = Booking()
        record(database_url, booking.requested(), *booking.paid_and_confirmed())
        record(database_url, *booking.cancelled())
        envelopes = _envelopes(database_url)

        in_order = _apply_into_twin(database_url, envelopes)
        reversed_ = _apply_into_twin(database_url, envelopes[::-1])
        shuffled = _apply_into_twin(database_url, envelopes[1::2] + envelopes[::2])

        assert in_order["status"] == "CANCELLED"
        assert reversed_ == in_order
        assert shuffled == in_order

    def test_applying_the_same_events_twice_changes_nothing(self, database_url: str) -> None:
        booking = Booking()
        record(database_url, booking.requested(), *booking.paid_and_confirmed())
        envelopes = _envelopes(database_url)

        assert _apply_into_twin(database_url, envelopes + envelopes) == _apply_into_twin(
            database_url, envelopes
        )
