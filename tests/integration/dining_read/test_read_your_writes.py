"""Read-your-writes over HTTP: ``min_position`` waits for the projection, bounded, then says
the answer may be stale rather than failing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace

import psycopg
from litestar.testing import TestClient

from api.app import create_app
from api.auth import Role
from api.dining.freshness import STALE_HEADER
from api.dining.queries import controllers
from domain.dining import messages as m
from projections.projector import Projector
from projections.runtime import WAKEUP_CHANNEL
from tests.integration.api.support import bearer
from tests.integration.dining_read.conftest import query_settings
from tests.integration.dining_read.support import Booking, catch_up, record
from tests.integration.projections.support import listening, relay_positions, running
from tests.waiting import wait_until


def _api_waits_for_progress(url: str) -> bool:
    """An API connection has checked the projection once and now sits in its bounded wait."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'haengbok-api' AND state = 'idle'"
            " AND query LIKE '%%LEFT JOIN projection.checkpoint%%'"
        ).fetchone()
    return bool(row and row[0])


@contextmanager
def _relay_when_a_reader_waits(url: str) -> Iterator[None]:
    """Relay the appended events only once a query is waiting on the projection's progress,
    so the answer can only be right if the query really waited."""
    errors: list[BaseException] = []

    def relay() -> None:
        try:
            wait_until(lambda: _api_waits_for_progress(url))
            relay_positions(url)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=relay)
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout=10)
    assert errors == []


class TestMinPosition:
    def test_a_query_waits_until_the_runner_has_projected_the_write(
        self, database_url: str, dining_projectors: list[Projector]
    ) -> None:
        booking = Booking()
        record(database_url, booking.requested())
        catch_up(database_url, dining_projectors)
        settings = query_settings(database_url, read_wait_max_seconds=10)
        path = f"/dining/reservations/{booking.reservation_id}"
        auth = bearer(settings, Role.CUSTOMER, subject="alice")

        with (
            TestClient(create_app(settings, controllers=controllers())) as client,
            running(database_url, dining_projectors, poll_interval=0.05),
        ):
            wait_until(lambda: listening(database_url, WAKEUP_CHANNEL) == 1)
            [position] = record(
                database_url, m.ReservationCancelled(booking.reservation_id, "alice"), relay=False
            )
            before = client.get(path, headers=auth)
            with _relay_when_a_reader_waits(database_url):
                after = client.get(f"{path}?min_position={position}", headers=auth)

        assert before.json()["status"] == "PENDING"
        assert after.status_code == 200
        assert after.json()["status"] == "CANCELLED"
        assert STALE_HEADER.lower() not in after.headers

    def test_a_position_already_reached_answers_at_once(
        self, database_url: str, dining_projectors: list[Projector]
    ) -> None:
        booking = Booking()
        [position] = record(database_url, booking.requested())
        catch_up(database_url, dining_projectors)
        settings = query_settings(database_url)
        auth = bearer(settings, Role.CUSTOMER, subject="alice")

        with TestClient(create_app(settings, controllers=controllers())) as client:
            started = time.monotonic()
            page = client.get(
                f"/dining/customer-center/reservations?min_position={position}", headers=auth
            )
            elapsed = time.monotonic() - started

        assert [r["status"] for r in page.json()["items"]] == ["PENDING"]
        assert STALE_HEADER.lower() not in page.headers
        assert elapsed < 2

    def test_when_the_projection_lags_past_the_limit_the_answer_says_it_may_be_stale(
        self, database_url: str, dining_projectors: list[Projector]
    ) -> None:
        booking = Booking()
        record(database_url, booking.requested())
        catch_up(database_url, dining_projectors)
        [position] = record(database_url, m.ReservationCancelled(booking.reservation_id, "alice"))
        settings = query_settings(database_url, read_wait_max_seconds=0.3)
        auth = bearer(settings, Role.CUSTOMER, subject="alice")

        # No runner: the projection stays behind the cancellation.
        with TestClient(create_app(settings, controllers=controllers())) as client:
            started = time.monotonic()
            response = client.get(
                f"/dining/reservations/{booking.reservation_id}?min_position={position}",
                headers=auth,
            )
            elapsed = time.monotonic() - started
            timeline = client.get(
                f"/dining/customer-center/timeline?min_position={position}", headers=auth
            )

        assert response.status_code == 200
        assert response.json()["status"] == "PENDING"
        assert response.headers[STALE_HEADER] == "true"
        assert 0.3 <= elapsed < 3
        assert timeline.headers[STALE_HEADER] == "true"

    def test_beyond_the_waiting_limit_a_query_answers_stale_at_once_instead_of_queueing(
        self, database_url: str, dining_projectors: list[Projector]
    ) -> None:
        # Each waiting query holds a pooled connection; with more waiters than the pool, the
        # rest queued for a connection past their own bound (10 waits: a reservation 4.6 s).
        booking = Booking()
        record(database_url, booking.requested())
        catch_up(database_url, dining_projectors)
        [position] = record(database_url, m.ReservationCancelled(booking.reservation_id, "alice"))
        settings = replace(
            query_settings(database_url, read_wait_max_seconds=4), read_wait_max_concurrent=1
        )
        auth = bearer(settings, Role.CUSTOMER, subject="alice")
        path = f"/dining/reservations/{booking.reservation_id}?min_position={position}"

        with (
            TestClient(create_app(settings, controllers=controllers())) as client,
            ThreadPoolExecutor(1) as pool,
        ):
            first = pool.submit(client.get, path, headers=auth)  # waits: no runner here
            wait_until(lambda: _api_waits_for_progress(database_url), message="the first waits")
            started = time.monotonic()
            second = client.get(path, headers=auth)
            elapsed = time.monotonic() - started
            assert not first.done(), "the first still waits while the second has its answer"
            waited = first.result(timeout=30)

        assert second.status_code == 200 and second.headers[STALE_HEADER] == "true"
        assert elapsed < 2, "no room to wait: answered at once, not after the 4 s bound"
        assert waited.status_code == 200 and waited.headers[STALE_HEADER] == "true"

    def test_a_missing_reservation_after_a_timeout_is_a_404_marked_stale(
        self, database_url: str
    ) -> None:
        booking = Booking()
        [position] = record(database_url, booking.requested())
        settings = query_settings(database_url, read_wait_max_seconds=0.2)
        auth = bearer(settings, Role.CUSTOMER, subject="alice")

        with TestClient(create_app(settings, controllers=controllers())) as client:
            response = client.get(
                f"/dining/reservations/{booking.reservation_id}/deposit?min_position={position}",
                headers=auth,
            )

        assert response.status_code == 404
        assert response.headers[STALE_HEADER] == "true"
