"""The ops API (/ops): operators see queues, sagas, projections and dead letters, and re-queue
or discard parked messages. Real HTTP through the app built by the composition root."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import unquote

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.auth import Role
from haengbok.bootstrap import build_api
from haengbok.settings import Settings
from outbox.envelope import MessageContext, NewMessage
from outbox.log import append
from outbox.sagas import command_stream
from projections.runtime import save_checkpoint
from tests.integration.api.support import assert_problem, bearer
from tests.integration.platform_state import (
    add_saga,
    append_and_relay,
    park_group,
    send,
)

QUEUE = "ops_q"
ROUTES = [
    ("GET", "/ops/overview"),
    ("GET", "/ops/queues"),
    ("GET", "/ops/sagas"),
    ("GET", f"/ops/sagas/{uuid.uuid4()}"),
    ("GET", "/ops/projections"),
    ("GET", "/ops/dead-letters"),
    ("POST", "/ops/dead-letters/1/retry"),
    ("DELETE", "/ops/dead-letters/1"),
]


@pytest.fixture
def ops_client(settings: Settings) -> Iterator[TestClient[Litestar]]:
    # build_api: the same controllers `haengbok api` serves, so the registration is tested too.
    with TestClient(build_api(settings)) as test_client:
        yield test_client


@pytest.fixture
def ops(settings: Settings) -> dict[str, str]:
    return bearer(settings, Role.OPS, subject="operator")


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url) as conn:
        conn.execute("SELECT pgmq.create(%s)", (QUEUE,))
        conn.commit()
        yield conn


class TestAccess:
    @pytest.mark.parametrize(("method", "path"), ROUTES)
    def test_without_a_token_is_401(
        self, ops_client: TestClient[Litestar], method: str, path: str
    ) -> None:
        assert_problem(ops_client.request(method, path), 401)

    @pytest.mark.parametrize(("method", "path"), ROUTES)
    def test_a_customer_is_403(
        self, ops_client: TestClient[Litestar], settings: Settings, method: str, path: str
    ) -> None:
        response = ops_client.request(method, path, headers=bearer(settings, Role.CUSTOMER))
        assert_problem(response, 403)


class TestOverviewAndQueues:
    def test_overview_is_the_metrics_snapshot(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        send(db, QUEUE, "notes.Written", group="a")
        park_group(db, QUEUE, "b", 1, "boom")
        append_and_relay(db, ["notes.Written", "notes.Written"])
        add_saga(db, "notes.Review", "RUNNING")

        body = ops_client.get("/ops/overview", headers=ops).json()

        [queue] = body["queues"]
        assert (queue["queue_name"], queue["length"], queue["visible_length"]) == (QUEUE, 1, 1)
        assert body["relay"] == {"pending": 0, "oldest_seconds": 0.0}
        assert body["log_head"] == 2
        assert body["sagas"] == [{"saga_type": "notes.Review", "status": "RUNNING", "instances": 1}]
        assert body["parked"] == {QUEUE: 1}

    def test_queues_show_depth_visible_age_and_parked(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        park_group(db, QUEUE, "g", 2, "boom")
        send(db, QUEUE, "notes.Written", group="x")
        send(db, QUEUE, "notes.Written", group="y")
        db.execute("SELECT * FROM pgmq.read(%s, 30, 1)", (QUEUE,))  # one in flight
        db.execute(f"UPDATE pgmq.q_{QUEUE} SET enqueued_at = now() - interval '42 seconds'")
        # A queue that was dropped while one of its messages was parked stays listed.
        db.execute(
            "INSERT INTO ops.parked_message (queue_name, msg_id, message, read_ct, error) "
            "VALUES ('gone_q', 1, '{}', 6, 'boom')"
        )
        db.commit()

        response = ops_client.get("/ops/queues", headers=ops)

        assert response.status_code == 200
        gone, ours = response.json()
        assert gone == {
            "queue_name": "gone_q",
            "depth": 0,
            "visible": 0,
            "oldest_age_seconds": None,
            "parked": 1,
            "exists": False,
        }
        assert (ours["queue_name"], ours["depth"], ours["visible"], ours["parked"]) == (
            QUEUE,
            2,
            1,
            2,
        )
        assert ours["exists"] is True
        assert ours["oldest_age_seconds"] >= 42


class TestSagas:
    def test_list_filters_by_status_and_type(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        parked = add_saga(db, "dining.Booking", "PARKED", parked_reason="provider gone")
        add_saga(db, "dining.Booking", "RUNNING")
        add_saga(db, "cinema.Ticket", "PARKED", parked_reason="seat map lost")

        response = ops_client.get(
            "/ops/sagas", params={"status": "PARKED", "saga_type": "dining.Booking"}, headers=ops
        )

        assert response.status_code == 200
        [saga] = response.json()
        assert saga["saga_id"] == str(parked)
        assert (saga["status"], saga["step"], saga["version"]) == ("PARKED", "hold", 3)
        assert saga["parked_reason"] == "provider gone"
        assert saga["state"] == {"seats": 2}
        assert saga["deadline_at"]
        everything = ops_client.get("/ops/sagas", headers=ops).json()
        assert len(everything) == 3
        assert len(ops_client.get("/ops/sagas", params={"limit": 2}, headers=ops).json()) == 2

    def test_pages_through_every_saga_with_the_next_link(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        made = {str(add_saga(db, "dining.Booking", "RUNNING")) for _ in range(5)}
        add_saga(db, "cinema.Ticket", "RUNNING")  # filtered out on every page
        # Two of them changed in the same instant: the id breaks the tie, none is lost.
        db.execute("UPDATE saga.instance SET updated_at = now() - interval '1 minute'")
        db.commit()

        seen: list[str] = []
        path: str | None = "/ops/sagas?saga_type=dining.Booking&limit=2"
        pages = 0
        while path is not None:
            response = ops_client.get(path, headers=ops)
            assert response.status_code == 200, response.text
            seen += [s["saga_id"] for s in response.json()]
            pages += 1
            link = response.headers.get("link")
            path = link[1 : link.index(">")] if link else None
            if link:
                assert "saga_type=dining.Booking" in link
                assert response.headers["x-next-cursor"] in unquote(link)

        assert pages == 3
        assert sorted(seen) == sorted(made) and len(seen) == 5

    def test_a_malformed_cursor_is_400(
        self, ops_client: TestClient[Litestar], ops: dict[str, str]
    ) -> None:
        cursor = f"2026-13-45T00:00:00Z~{uuid.uuid4()}"
        assert_problem(ops_client.get("/ops/sagas", params={"after": cursor}, headers=ops), 400)
        assert_problem(ops_client.get("/ops/sagas", params={"after": "x"}, headers=ops), 400)

    @pytest.mark.parametrize("params", [{"status": "STUCK"}, {"limit": 0}, {"limit": 501}])
    def test_bad_filters_are_400(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], params: dict[str, object]
    ) -> None:
        body = assert_problem(ops_client.get("/ops/sagas", params=params, headers=ops), 400)
        assert [e["key"] for e in body["errors"]] == list(params)  # the parameter's own name

    def test_one_saga_with_its_messages_in_log_order(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        ctx = append_and_relay(db, ["dining.HoldPlaced", "dining.DepositRequested"])
        append_and_relay(db, ["dining.Unrelated"])  # another conversation
        append_and_relay(db, ["dining.DepositPaid"], ctx)
        saga_id = add_saga(db, "dining.Booking", "RUNNING", correlation_id=ctx.correlation_id)

        response = ops_client.get(f"/ops/sagas/{saga_id}", headers=ops)

        assert response.status_code == 200
        body = response.json()
        assert (body["saga_id"], body["status"], body["version"]) == (str(saga_id), "RUNNING", 3)
        assert body["correlation_id"] == str(ctx.correlation_id)
        assert body["completed_steps"] == []
        types = [m["type"] for m in body["messages"]]
        assert types == ["dining.HoldPlaced", "dining.DepositRequested", "dining.DepositPaid"]
        positions = [m["position"] for m in body["messages"]]
        assert positions == sorted(positions)

    def test_a_later_conversation_of_the_saga_is_part_of_its_flow(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        # A cancel is a request of its own (a new correlation id); the saga's undo command,
        # on the saga's stream, carries it on: both conversations are the saga's flow.
        started = append_and_relay(db, ["dining.HoldPlaced"])
        saga_id = add_saga(
            db, "dining.Booking", "COMPENSATING", correlation_id=started.correlation_id
        )
        cancel = MessageContext.new("alice")
        with db.transaction():
            append(db, [NewMessage("dining.BookingCancelled", f"booking-{saga_id}", {})], cancel)
            append(
                db,
                [NewMessage("dining.RefundDeposit", command_stream("dining.Booking", saga_id), {})],
                cancel,
            )
        append_and_relay(db, ["dining.Unrelated"])  # another conversation

        body = ops_client.get(f"/ops/sagas/{saga_id}", headers=ops).json()

        assert [m["type"] for m in body["messages"]] == [
            "dining.HoldPlaced",
            "dining.BookingCancelled",
            "dining.RefundDeposit",
        ]

    def test_an_unknown_saga_is_404(
        self, ops_client: TestClient[Litestar], ops: dict[str, str]
    ) -> None:
        assert_problem(ops_client.get(f"/ops/sagas/{uuid.uuid4()}", headers=ops), 404)


class TestProjections:
    def test_checkpoint_head_and_lag(
        self, ops_client: TestClient[Litestar], ops: dict[str, str], db: psycopg.Connection
    ) -> None:
        append_and_relay(db, ["notes.Written"] * 3)
        with db.transaction():
            db.execute("UPDATE outbox.event SET occurred_at = now() - interval '30 seconds'")
            save_checkpoint(db, "notes_view", 1)
            save_checkpoint(db, "notes_report", 3)

        response = ops_client.get("/ops/projections", headers=ops)

        assert response.status_code == 200
        report, view = response.json()
        assert (report["name"], report["lag_events"], report["lag_seconds"]) == (
            "notes_report",
            0,
            0,
        )
        assert (view["name"], view["checkpoint"], view["head"], view["lag_events"]) == (
            "notes_view",
            1,
            3,
            2,
        )
        assert view["lag_seconds"] >= 30
