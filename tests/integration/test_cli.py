"""The `haengbok` command: `status` reads the platform's state from the database, `token` mints
development tokens that the API accepts."""

from __future__ import annotations

import re

import psycopg
import pytest
from click.testing import CliRunner

from api.auth import Role, read_token
from haengbok.cli import main
from haengbok.dburl import with_database
from haengbok.settings import Settings
from outbox.envelope import MessageContext, NewMessage
from outbox.log import append
from projections.runtime import save_checkpoint
from tests.integration.dining_read.support import Booking, record
from tests.integration.platform_state import add_saga, append_and_relay, park_group, send

AGE = re.compile(r"^\d+(\.\d+)?s$")
SECRET = "cli-test-secret-0123456789-0123456789-0123456789"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


class TestStatus:
    def test_prints_relay_queues_projections_sagas_and_parked(
        self, runner: CliRunner, database_url: str
    ) -> None:
        with psycopg.connect(database_url) as conn:
            conn.execute("SELECT pgmq.create('cli_q'), pgmq.create('cli_gone_q')")
            conn.commit()
            send(conn, "cli_q", "notes.Written", group="a")
            send(conn, "cli_q", "notes.Written", group="b")
            park_group(conn, "cli_q", "c", 1, "boom")
            append_and_relay(conn, ["notes.Written"] * 4)
            with conn.transaction():
                save_checkpoint(conn, "cli_view", 1)
            add_saga(conn, "cli.Saga", "COMPENSATING")
            park_group(conn, "cli_gone_q", "d", 2, "boom")
            conn.execute("SELECT pgmq.drop_queue('cli_gone_q')")
            conn.commit()

        result = runner.invoke(main, ["status"], env={"DATABASE_URL": database_url})

        # Parked messages need an operator: exit 2 (monitoring and cron act on it).
        assert result.exit_code == 2, result.output
        assert "needs attention: 3 parked message(s)" in result.output
        lines = result.output.splitlines()
        assert any("relay" in line and "0 events waiting" in line for line in lines)
        assert any("log head (global position) 4" in line for line in lines)
        assert _row(lines, "cli_q") == ["cli_q", "2", "2", "1"]
        assert _row(lines, "cli_view") == ["cli_view", "1", "4", "3"]
        assert _row(lines, "cli.Saga") == ["cli.Saga", "COMPENSATING", "1"]
        assert _row(lines, "cli_gone_q") == ["cli_gone_q", "-", "-", "-", "2"], (
            "dropped, still parked"
        )
        assert "3 parked message(s)" in result.output

    def test_lists_each_circuit_breaker_with_its_state_and_next_trial(
        self, runner: CliRunner, database_url: str
    ) -> None:
        with psycopg.connect(database_url) as conn:
            conn.execute(
                """
                INSERT INTO ops.circuit_breaker (name, state, failures, opened_at, next_attempt_at)
                VALUES ('cli_closed', 'CLOSED', 0, NULL, NULL),
                       ('cli_open', 'OPEN', 5, now() - interval '3 s', now() + interval '27 s'),
                       ('cli_due', 'OPEN', 6, now() - interval '40 s', now() - interval '10 s'),
                       ('cli_trial', 'HALF_OPEN', 5, now() - interval '40 s',
                        now() + interval '9 s'),
                       ('cli_lost', 'HALF_OPEN', 5, now() - interval '60 s',
                        now() - interval '5 s')
                """
            )
            conn.commit()

        result = runner.invoke(main, ["status"], env={"DATABASE_URL": database_url})

        assert result.exit_code == 2, result.output
        assert "circuit cli_open OPEN" in result.output
        assert "circuit cli_closed" not in result.output.split("needs attention:")[1]
        lines = result.output.splitlines()
        assert "circuit breakers" in result.output
        assert "none used yet" not in result.output
        assert _row(lines, "cli_closed") == ["cli_closed", "CLOSED", "-", "-", "-"]
        open_row = _row(lines, "cli_open")
        assert open_row[:3] == ["cli_open", "OPEN", "5"]
        assert re.fullmatch(r"\d+\.\ds ago", open_row[3]), open_row
        assert re.fullmatch(r"in (1\d|2\d)\.\ds", open_row[4]), open_row
        # Cool-down over: the breaker lets the next call through as the trial (_admit).
        assert _row(lines, "cli_due")[:3] == ["cli_due", "OPEN", "6"]
        assert _row(lines, "cli_due")[4] == "next call is the trial"
        trial = _row(lines, "cli_trial")
        assert trial[:2] == ["cli_trial", "HALF_OPEN"]
        assert re.fullmatch(r"running, lost in \d\.\ds", trial[4]), trial
        assert _row(lines, "cli_lost")[4] == "next call is a new trial"

    def test_says_so_when_no_circuit_breaker_has_been_used_yet(
        self, runner: CliRunner, database_url: str
    ) -> None:
        result = runner.invoke(main, ["status"], env={"DATABASE_URL": database_url})

        assert result.exit_code == 0, result.output  # nothing needs attention
        assert "needs attention" not in result.output
        assert "circuit breakers: none used yet" in result.output
        assert "next trial" not in result.output, "no empty table"

    def test_a_parked_saga_needs_attention(self, runner: CliRunner, database_url: str) -> None:
        with psycopg.connect(database_url) as conn:
            add_saga(conn, "cli.Saga", "PARKED", parked_reason="provider gone")
            add_saga(conn, "cli.Saga", "RUNNING")
            conn.commit()

        result = runner.invoke(main, ["status"], env={"DATABASE_URL": database_url})

        assert result.exit_code == 2, result.output
        assert "needs attention: 1 parked saga(s)" in result.output

    def test_a_projection_stuck_on_an_event_needs_attention(
        self, runner: CliRunner, database_url: str
    ) -> None:
        # An event it cannot apply (or no runner): its oldest unapplied event only grows older.
        with psycopg.connect(database_url) as conn:
            append_and_relay(conn, ["cli.Happened"])
            conn.execute("UPDATE outbox.event SET occurred_at = now() - interval '90 seconds'")
            # stuck_view last moved 90 s ago and its next event is 90 s old; busy_view is as
            # far behind but moved just now (a backlog); fine_view is caught up.
            conn.execute(
                "INSERT INTO projection.checkpoint (name, position, updated_at) VALUES"
                " ('stuck_view', 0, now() - interval '90 seconds'), ('busy_view', 0, now()),"
                " ('fine_view', 1, now() - interval '1 hour')"
            )
            conn.commit()

        result = runner.invoke(main, ["status"], env={"DATABASE_URL": database_url})

        assert result.exit_code == 2, result.output
        said = result.output.split("needs attention:")[1]
        assert "projection stuck_view has not moved for 9" in said
        assert "busy_view" not in said and "fine_view" not in said
        assert re.search(r"stuck_view\s.*\s9\d\.\ds", result.output), result.output

    def test_an_event_left_unrelayed_needs_attention(
        self, runner: CliRunner, database_url: str
    ) -> None:
        with psycopg.connect(database_url) as conn:
            append(conn, [NewMessage("cli.Happened", "stream-1", {})], MessageContext.new())
            conn.execute("UPDATE outbox.event SET occurred_at = now() - interval '90 seconds'")
            conn.commit()

        result = runner.invoke(main, ["status"], env={"DATABASE_URL": database_url})

        assert result.exit_code == 2, result.output
        assert "the relay has left an event unrelayed for 9" in result.output

    def test_an_unreachable_database_is_one_clear_error(
        self, runner: CliRunner, database_url: str
    ) -> None:
        missing = with_database(database_url, "no_such_database_for_haengbok")

        result = runner.invoke(main, ["status"], env={"DATABASE_URL": missing})

        assert result.exit_code == 1
        assert "cannot read the status from the database" in result.output
        assert "Traceback" not in result.output


def _row(lines: list[str], first_cell: str) -> list[str]:
    """The cells of the table row that starts with ``first_cell`` (ages are left out)."""
    for line in lines:
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0] == first_cell:
            return [c for c in cells if not AGE.match(c)]
    raise AssertionError(f"no row for {first_cell!r} in:\n" + "\n".join(lines))


class TestToken:
    def test_prints_a_token_the_api_accepts(self, runner: CliRunner) -> None:
        result = runner.invoke(
            main,
            ["token", "--role", "ops", "--role", "analyst", "--subject", "x"],
            env={"HAENGBOK_JWT_SECRET": SECRET},
        )

        assert result.exit_code == 0, result.output
        principal = read_token(Settings(jwt_secret=SECRET), result.output.strip())
        assert principal.subject == "x"
        assert principal.roles == {Role.OPS, Role.ANALYST}

    def test_an_unknown_role_exits_non_zero_and_names_the_choices(self, runner: CliRunner) -> None:
        result = runner.invoke(main, ["token", "--role", "janitor", "--subject", "x"])

        assert result.exit_code != 0
        assert "unknown role 'janitor'" in result.output
        assert "ops" in result.output
        assert "eyJ" not in result.output, "no token printed"


class TestMigrate:
    def test_records_every_subscription_and_creates_its_queue_before_any_worker_runs(
        self, runner: CliRunner, database_url: str
    ) -> None:
        result = runner.invoke(main, ["migrate"], env={"DATABASE_URL": database_url})
        assert result.exit_code == 0, result.output
        with psycopg.connect(database_url) as conn:
            subs = dict(conn.execute("SELECT name, queue_name FROM outbox.subscription").fetchall())
            queues = {r[0] for r in conn.execute("SELECT queue_name FROM pgmq.meta").fetchall()}
        assert "subscriptions recorded" in result.output
        assert len(subs) >= 5, subs  # the Dining contexts and the reservation saga
        assert set(subs.values()) <= queues


class TestRebuild:
    """`haengbok rebuild NAME`: an operator's way to rebuild a read model from the log."""

    def test_without_a_name_it_lists_the_projections(self, runner: CliRunner) -> None:
        result = runner.invoke(main, ["rebuild"])
        assert result.exit_code == 0, result.output
        assert result.output.split() == [
            "dining_customer_reservations", "dining_customer_timeline",
            "dining_recommendation_entries", "dining_restaurant_ratings",
        ]  # fmt: skip

    def test_an_unknown_name_is_a_usage_error_listing_the_known_ones(
        self, runner: CliRunner, database_url: str
    ) -> None:
        result = runner.invoke(main, ["rebuild", "timeline"], env={"DATABASE_URL": database_url})
        assert result.exit_code == 2
        assert "no projection 'timeline'" in result.output
        assert "dining_customer_timeline" in result.output

    def test_rebuilds_the_read_model_from_the_log_with_progress(
        self, runner: CliRunner, database_url: str
    ) -> None:
        booking = Booking()
        record(database_url, booking.requested(), *booking.paid_and_confirmed())
        with psycopg.connect(database_url) as conn:
            before = conn.execute("SELECT count(*) FROM customer_center.timeline").fetchone()

        result = runner.invoke(
            main, ["rebuild", "dining_customer_timeline"], env={"DATABASE_URL": database_url}
        )

        assert result.exit_code == 0, result.output
        assert re.search(r"rebuilt dining_customer_timeline up to log position \d+", result.output)
        assert "of" in result.output and "log positions (100 %)" in result.output
        with psycopg.connect(database_url) as conn:
            entries = conn.execute(
                "SELECT count(*) FROM customer_center.timeline WHERE reservation_id = %s",
                [booking.reservation_id],
            ).fetchone()
            checkpoint = conn.execute(
                "SELECT position FROM projection.checkpoint WHERE name = 'dining_customer_timeline'"
            ).fetchone()
        assert before == (0,)
        assert entries is not None and entries[0] >= 3
        assert checkpoint is not None and checkpoint[0] > 0
