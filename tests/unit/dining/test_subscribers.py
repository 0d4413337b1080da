"""How Dining's subscribers are wired: which commands the saga runs itself, which go through
a queue."""

from __future__ import annotations

from api.dining.subscribers import RESERVATION, SAGA, subscribers
from domain.dining.messages import (
    AcceptReservation,
    ConfirmReservation,
    RecordDepositPaid,
    RegisterRecommendationEntry,
    RejectReservation,
    TakeDeposit,
)
from haengbok.payments.fake import FakePaymentProvider

OWN_CONTEXT = {RecordDepositPaid.TYPE, ConfirmReservation.TYPE, RejectReservation.TYPE}


def test_the_saga_runs_its_own_contexts_commands_and_sends_the_others() -> None:
    saga = next(s for s in subscribers(FakePaymentProvider()) if s.name == SAGA)
    runner = saga.handler.__self__  # type: ignore[attr-defined]  # SagaRunner.handle

    assert set(runner.local) == OWN_CONTEXT
    remote = {TakeDeposit.TYPE, RegisterRecommendationEntry.TYPE, AcceptReservation.TYPE}
    assert not remote & set(runner.local)


def test_the_reservation_queue_still_takes_those_commands_appended_before_the_saga_ran_them() -> (
    None
):
    by_name = {s.name: s for s in subscribers(FakePaymentProvider())}

    assert by_name[RESERVATION].handles == frozenset(OWN_CONTEXT)
