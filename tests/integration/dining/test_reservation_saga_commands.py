"""The saga's commands to the reservation context: one statement locks the row and writes the
change the command should make; the domain's transition still decides what is written."""

from __future__ import annotations

import dataclasses
import uuid

import psycopg
import pytest

from api.dining import reservations
from domain.dining.errors import IllegalTransition
from domain.dining.messages import (
    ConfirmReservation,
    RecordDepositPaid,
    RejectReservation,
    ReservationDepositPaid,
    ReservationRejected,
)
from domain.dining.reservation import ReservationStatus
from domain.messages import Command
from haengbok.settings import Settings
from outbox.consumers import HandlerContext
from tests.integration.dining.support import (
    Client,
    customer,
    delivered,
    owner,
    register_restaurant,
    reserve,
    scalar,
    status,
)


def _handle(url: str, command: Command) -> list[str]:
    """Handle ``command`` in a transaction of its own; the types the handler appended."""
    envelope = delivered(command, uuid.uuid4())
    with psycopg.connect(url) as conn:
        before = conn.execute("SELECT coalesce(max(position), 0) FROM outbox.event").fetchone()
        assert before is not None
        reservations.handle_saga_command(
            HandlerContext(conn, envelope, None, None),  # type: ignore[arg-type]
            envelope,
        )
        rows = conn.execute(
            "SELECT type FROM outbox.event WHERE position > %s ORDER BY position", [before[0]]
        ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def pending(client: Client, settings: Settings) -> uuid.UUID:
    place = register_restaurant(client, owner(settings))
    return uuid.UUID(reserve(client, customer(settings), place["restaurant_id"]))


class TestSagaCommands:
    def test_each_command_moves_the_reservation_and_emits_the_domains_event(
        self, database_url: str, pending: uuid.UUID
    ) -> None:
        assert _handle(database_url, RecordDepositPaid(pending)) == [ReservationDepositPaid.TYPE]
        assert status(database_url, str(pending)) == "DEPOSIT_PAID"

        assert _handle(database_url, RejectReservation(pending, "no seats")) == [
            ReservationRejected.TYPE
        ]
        assert status(database_url, str(pending)) == "REJECTED"
        reason = scalar(
            database_url,
            "SELECT status_reason FROM reservation.reservation WHERE reservation_id = %s",
            pending,
        )
        assert reason == "no seats"

    def test_a_command_its_status_does_not_allow_raises_and_writes_nothing(
        self, database_url: str, pending: uuid.UUID
    ) -> None:
        with pytest.raises(IllegalTransition):
            _handle(database_url, ConfirmReservation(pending))
        assert status(database_url, str(pending)) == "PENDING"

    def test_a_command_for_a_closed_reservation_changes_nothing(
        self, database_url: str, pending: uuid.UUID
    ) -> None:
        _handle(database_url, RejectReservation(pending, "deposit declined"))

        assert _handle(database_url, RecordDepositPaid(pending)) == []
        assert status(database_url, str(pending)) == "REJECTED"

    def test_where_the_expected_change_differs_the_domains_result_is_written(
        self, database_url: str, pending: uuid.UUID, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The statement's guess is only a shortcut: a wrong one (here, a table entry that
        says the deposit confirms the reservation) is overwritten by the domain's result."""
        wrong = dataclasses.replace(
            reservations._SAGA_COMMANDS[RecordDepositPaid.TYPE], to=ReservationStatus.CONFIRMED
        )
        monkeypatch.setitem(reservations._SAGA_COMMANDS, RecordDepositPaid.TYPE, wrong)

        assert _handle(database_url, RecordDepositPaid(pending)) == [ReservationDepositPaid.TYPE]
        assert status(database_url, str(pending)) == "DEPOSIT_PAID"
