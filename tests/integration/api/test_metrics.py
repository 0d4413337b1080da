"""/metrics: HTTP metrics plus platform gauges read from the database at scrape time."""

from __future__ import annotations

import dataclasses
import uuid

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.ops_queries import read_ops_snapshot_sync
from haengbok.dburl import with_database
from haengbok.settings import Settings
from outbox.envelope import MessageContext, NewMessage
from outbox.log import append

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(client: TestClient[Litestar]) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def platform_state(database_url: str) -> None:
    """Queues, an unrelayed event, projections, sagas and dead letters with known numbers."""
    with psycopg.connect(database_url) as conn:
        conn.execute("SELECT pgmq.create('notes_q')")
        conn.execute(
            "SELECT pgmq.send_batch('notes_q', ARRAY['{\"n\": 1}', '{\"n\": 2}', '{\"n\": 3}']::jsonb[])"
        )
        conn.execute("SELECT * FROM pgmq.read('notes_q', 30, 1)")  # one message in flight
        conn.execute(
            "UPDATE pgmq.q_notes_q SET enqueued_at = now() - interval '42 seconds' "
            "WHERE msg_id = (SELECT min(msg_id) FROM pgmq.q_notes_q)"
        )
        ctx = MessageContext.new("test")
        appended = append(
            conn,
            [NewMessage("notes.NoteWritten", f"note-{i}", {"i": i}) for i in range(3)],
            ctx,
        )
        # Play the relay for the first two events; the third is still pending.
        for global_position, a in enumerate(appended[:2], start=1):
            conn.execute(
                "UPDATE outbox.event SET global_position = %s WHERE position = %s",
                (global_position, a.position),
            )
        conn.execute(
            "UPDATE outbox.event SET occurred_at = now() - interval '30 seconds' "
            "WHERE position = %s",
            (appended[2].position,),
        )
        conn.execute(
            "INSERT INTO projection.checkpoint (name, position) VALUES ('notes_view', 1), ('notes_report', 2)"
        )
        for saga_type, status, reason in [
            ("notes.Review", "RUNNING", None),
            ("notes.Review", "RUNNING", None),
            ("notes.Review", "PARKED", "reviewer gone"),
            ("notes.Archive", "COMPLETED", None),
        ]:
            conn.execute(
                "INSERT INTO saga.instance (saga_id, saga_type, status, step, correlation_id, parked_reason) "
                "VALUES (%s, %s, %s, 'start', %s, %s)",
                (uuid.uuid4(), saga_type, status, uuid.uuid4(), reason),
            )
        for queue in ("notes_q", "notes_q", "gone_q"):
            conn.execute(
                "INSERT INTO ops.parked_message (queue_name, msg_id, message, read_ct, error) "
                "VALUES (%s, 1, '{}', 6, 'boom')",
                (queue,),
            )


class TestPlatformGauges:
    def test_report_queue_relay_projection_saga_and_parked_values(
        self, client: TestClient[Litestar], platform_state: None
    ) -> None:
        samples = _scrape(client)

        assert _value(samples, "haengbok_ops_scrape_ok") == 1
        assert _value(samples, "haengbok_queue_depth", queue="notes_q") == 3
        assert _value(samples, "haengbok_queue_visible_depth", queue="notes_q") == 2
        assert _value(samples, "haengbok_queue_oldest_message_age_seconds", queue="notes_q") >= 42
        assert _value(samples, "haengbok_relay_pending_events") == 1
        assert _value(samples, "haengbok_relay_oldest_pending_age_seconds") >= 30
        assert _value(samples, "haengbok_log_head_position") == 2
        assert _value(samples, "haengbok_projection_lag_events", projection="notes_view") == 1
        assert _value(samples, "haengbok_projection_lag_events", projection="notes_report") == 0
        assert _value(samples, "haengbok_projection_position", projection="notes_view") == 1
        # notes_view has not applied the event at global position 2, appended a moment ago.
        assert _value(samples, "haengbok_projection_lag_seconds", projection="notes_view") > 0
        assert _value(samples, "haengbok_projection_lag_seconds", projection="notes_report") == 0
        running = {"saga_type": "notes.Review", "status": "RUNNING"}
        assert _value(samples, "haengbok_saga_instances", **running) == 2
        assert (
            _value(samples, "haengbok_saga_instances", saga_type="notes.Review", status="PARKED")
            == 1
        )
        assert (
            _value(samples, "haengbok_saga_instances", saga_type="notes.Review", status="COMPLETED")
            == 0
        )
        assert (
            _value(
                samples, "haengbok_saga_instances", saga_type="notes.Archive", status="COMPLETED"
            )
            == 1
        )
        assert _value(samples, "haengbok_parked_messages", queue="notes_q") == 2
        assert _value(samples, "haengbok_parked_messages", queue="gone_q") == 1

    def test_an_empty_platform_reports_zeros(self, client: TestClient[Litestar]) -> None:
        samples = _scrape(client)
        assert _value(samples, "haengbok_relay_pending_events") == 0
        assert _value(samples, "haengbok_relay_oldest_pending_age_seconds") == 0
        assert _value(samples, "haengbok_log_head_position") == 0


class TestHttpMetrics:
    def test_count_requests_by_route_template_and_status(
        self, client: TestClient[Litestar], auth: dict[str, str]
    ) -> None:
        client.get("/health/live")
        client.post("/notes", json={"text": "m"}, headers=auth)
        client.post("/notes", json={"text": "m"})  # 401, rejected by the auth middleware

        samples = _scrape(client)

        live = {"method": "GET", "route": "/health/live", "status": "200"}
        assert _value(samples, "haengbok_http_requests_total", **live) == 1
        assert (
            _value(
                samples, "haengbok_http_requests_total", method="POST", route="/notes", status="202"
            )
            == 1
        )
        assert (
            _value(
                samples, "haengbok_http_requests_total", method="POST", route="/notes", status="401"
            )
            == 1
        )
        assert (
            _value(
                samples,
                "haengbok_http_request_duration_seconds_count",
                method="GET",
                route="/health/live",
            )
            == 1
        )


class TestDatabaseDown:
    def test_metrics_still_answer_and_say_the_gauges_are_missing(self, settings: Settings) -> None:
        assert settings.database_url is not None
        missing = with_database(settings.database_url, "no_such_database_for_haengbok")
        app = create_app(
            dataclasses.replace(settings, database_url=missing), db_probe_timeout_seconds=0.3
        )
        with TestClient(app) as client:
            samples = _scrape(client)
        assert _value(samples, "haengbok_ops_scrape_ok") == 0
        assert not any(name == "haengbok_queue_depth" for name, _ in samples)


class TestOpsSnapshotForTheCli:
    def test_the_sync_reader_sees_the_same_state(
        self, database_url: str, platform_state: None
    ) -> None:
        with psycopg.connect(database_url) as conn:
            snapshot = read_ops_snapshot_sync(conn)

        assert [(q.queue_name, q.length, q.visible_length) for q in snapshot.queues] == [
            ("notes_q", 3, 2)
        ]
        assert snapshot.relay.pending == 1
        assert snapshot.log_head == 2
        assert {p.name: p.lag for p in snapshot.projections} == {"notes_report": 0, "notes_view": 1}
        assert snapshot.parked == {"gone_q": 1, "notes_q": 2}
