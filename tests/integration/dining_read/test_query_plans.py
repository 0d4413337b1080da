"""The customer center's hot queries read indexes, not whole read-model tables."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import psycopg

from sql import query

# 2000 customers with 5 reservations each, 6 timeline entries per reservation.
_FILL = """
INSERT INTO customer_center.reservation (reservation_id, customer, status, requested_at,
                                         updated_at, last_global_position)
SELECT md5(i::text)::uuid, 'c' || (i % 2000), 'CONFIRMED',
       now() - i * interval '1 minute', now(), i
FROM generate_series(1, 10000) i;
INSERT INTO customer_center.timeline (global_position, reservation_id, event_id, kind, type,
                                      stream, version, summary, correlation_id, occurred_at)
SELECT g, md5((g % 10000 + 1)::text)::uuid, gen_random_uuid(), 'event',
       'reservation.ReservationConfirmed', 's', 1, 'x', gen_random_uuid(), now()
FROM generate_series(1, 60000) g;
ANALYZE customer_center.reservation;
ANALYZE customer_center.timeline;
"""


def _plan(conn: psycopg.Connection[Any], name: str, params: dict[str, Any]) -> str:
    row = conn.execute(f"EXPLAIN (FORMAT JSON) {query(name)}", params).fetchone()
    assert row is not None
    return json.dumps(row[0])


class TestCustomerCenterPlans:
    def test_my_reservations_and_my_timeline_use_their_indexes(self, database_url: str) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(_FILL)
            reservations = _plan(
                conn,
                "dining_read.customer_reservations",
                {"customer": "c7", "limit": 21, "offset": 0, "after_at": None, "after_id": None},
            )
            after_a_cursor = _plan(
                conn,
                "dining_read.customer_reservations",
                {"customer": "c7", "limit": 21, "offset": 0, "after_id": uuid.uuid4(),
                 "after_at": dt.datetime.now(dt.UTC)},
            )  # fmt: skip
            timeline = _plan(
                conn,
                "dining_read.customer_timeline",
                {"customer": "c7", "reservation_id": None, "after": 0, "limit": 101},
            )

        assert "reservation_customer_requested_at_idx" in reservations
        assert "reservation_customer_requested_at_idx" in after_a_cursor
        assert "reservation_customer_requested_at_idx" in timeline
        assert "timeline_reservation_id_global_position_idx" in timeline
        for plan in (reservations, after_a_cursor, timeline):
            assert "Seq Scan" not in plan
