"""How Dining's subscribers are wired: which commands the saga runs itself, which go through
a queue."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from api.dining.subscribers import RESERVATION, SAGA, reservation_saga, subscribers
from domain.dining.messages import (
    AcceptReservation,
    ConfirmReservation,
    DepositPaid,
    RecordDepositPaid,
    RegisterRecommendationEntry,
    RejectReservation,
    ReservationAccepted,
    ReservationRequested,
    TakeDeposit,
)
from domain.dining.saga import ReservationSaga
from haengbok.payments.fake import FakePaymentProvider
from outbox.envelope import MessageContext, NewMessage
from outbox.sagas import SagaRunner

OWN_CONTEXT = {RecordDepositPaid.TYPE, ConfirmReservation.TYPE, RejectReservation.TYPE}


def test_the_saga_runs_its_own_contexts_commands_and_sends_the_others() -> None:
    runner = _runner()

    assert set(runner.local) == OWN_CONTEXT
    remote = {TakeDeposit.TYPE, RegisterRecommendationEntry.TYPE, AcceptReservation.TYPE}
    assert not remote & set(runner.local)


def test_the_reservation_queue_still_takes_those_commands_appended_before_the_saga_ran_them() -> (
    None
):
    by_name = {s.name: s for s in subscribers(FakePaymentProvider())}

    assert by_name[RESERVATION].handles == frozenset(OWN_CONTEXT)


def _runner() -> Any:
    saga = next(s for s in subscribers(FakePaymentProvider()) if s.name == SAGA)
    return saga.handler.__self__  # type: ignore[attr-defined]  # SagaRunner.handle


def test_the_request_starts_the_saga_so_its_queue_is_not_sent_the_request() -> None:
    saga = next(s for s in subscribers(FakePaymentProvider()) if s.name == SAGA)

    assert ReservationRequested.TYPE not in saga.handles
    assert ReservationRequested.TYPE not in saga.route.message_types
    assert {DepositPaid.TYPE, ReservationAccepted.TYPE} <= saga.handles


def _requested() -> tuple[uuid.UUID, NewMessage]:
    rid = uuid.uuid4()
    requested = ReservationRequested(
        rid, "alice", uuid.uuid4(), "Haengbok BBQ", dt.date(2027, 1, 5), "19:00", 2, 10_000
    )
    return rid, NewMessage(requested.TYPE, requested.stream(), requested.payload())


def test_start_now_gives_the_instance_row_and_the_first_command_caused_by_the_request() -> None:
    rid, start = _requested()
    context = MessageContext(uuid.uuid4(), uuid.uuid4(), "alice")

    before = dt.datetime.now(dt.UTC)
    started = reservation_saga(step_deadline_ms=5_000).start_now(rid, start, context)
    after = dt.datetime.now(dt.UTC)

    _, row = started.write
    assert (row["saga_id"], row["saga_status"], row["saga_step"]) == (
        rid, "RUNNING", "taking_deposit"
    )  # fmt: skip
    assert row["saga_correlation_id"] == context.correlation_id
    assert row["saga_deadline_name"] == "deposit"
    step = dt.timedelta(seconds=5)
    assert before + step <= row["saga_deadline_at"] <= after + step
    ((command, caused),) = started.commands
    assert (command.type, command.kind, command.stream) == (
        TakeDeposit.TYPE, "command", f"saga-dining_reservation-{rid}"
    )  # fmt: skip
    assert command.payload["amount"] == 10_000
    assert caused == MessageContext(context.correlation_id, start.event_id, "alice")


def test_start_now_takes_only_a_start_message() -> None:
    rid, _ = _requested()
    paid = NewMessage(DepositPaid.TYPE, f"deposit-{rid}", {"reservation_id": str(rid)})

    with pytest.raises(ValueError, match="does not start"):
        _runner().start_now(rid, paid, MessageContext.new("alice"))


def test_a_start_that_would_run_a_local_command_cannot_happen_in_a_command() -> None:
    # A local command needs a delivery's transaction and context, which a command has not.
    rid, start = _requested()
    runner = SagaRunner(ReservationSaga(), local={TakeDeposit.TYPE: lambda ctx, env: None})

    with pytest.raises(ValueError, match="local"):
        runner.start_now(rid, start, MessageContext.new("alice"))
