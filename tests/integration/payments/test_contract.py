"""One contract for every payment provider adapter: the in-memory fake and the HTTP client
talking to a real sandbox server. Whatever a deposit handler relies on is specified here."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Protocol

import pytest

from domain.payments import (
    CHARGE_NOT_FOUND,
    CHARGE_NOT_REFUNDABLE,
    REFUND_EXCEEDS_CHARGE,
    PaymentProtocolError,
    PaymentProvider,
    PaymentUnavailable,
)
from haengbok.payments.breaker import CircuitBreaker, MemoryBreakerStore
from haengbok.payments.client import HttpPaymentProvider
from haengbok.payments.fake import FakePaymentProvider
from tests.integration.payments.sandbox_server import RunningSandbox, running_sandbox

DEPOSIT = 10_000
# The HTTP client gives up reading after this; a "lost answer" is a slower one.
READ_TIMEOUT = 0.5


class Backend(Protocol):
    """A provider under test, and the knobs and windows the contract needs."""

    provider: PaymentProvider

    def decline_above(self, amount: int | None) -> None: ...
    def go_down(self) -> None: ...
    def lose_next_answer(self) -> None: ...
    def come_back(self) -> None: ...
    def charge_count(self) -> int: ...
    def refunded_amount(self, charge_reference: str) -> int: ...


class FakeBackend:
    def __init__(self) -> None:
        self.fake = FakePaymentProvider()
        self.provider: PaymentProvider = self.fake

    def decline_above(self, amount: int | None) -> None:
        self.fake.decline_above(amount)

    def go_down(self) -> None:
        self.fake.go_down()

    def lose_next_answer(self) -> None:
        self.fake.lose_next_answers(1)

    def come_back(self) -> None:
        self.fake.come_back()

    def charge_count(self) -> int:
        return self.fake.charge_count()

    def refunded_amount(self, charge_reference: str) -> int:
        return self.fake.refunded_amount(charge_reference)


class SandboxBackend:
    def __init__(self, sandbox: RunningSandbox, client: HttpPaymentProvider) -> None:
        self.sandbox = sandbox
        self.provider: PaymentProvider = client
        self._decline_above: int | None = None

    def decline_above(self, amount: int | None) -> None:
        self._decline_above = amount
        self.sandbox.behave(decline_above=amount)

    def go_down(self) -> None:
        self.sandbox.behave(failure_rate=1.0, decline_above=self._decline_above)

    def lose_next_answer(self) -> None:
        # The sandbox records the charge, then answers after the client stopped waiting.
        latency = int(READ_TIMEOUT * 1000 * 2)
        self.sandbox.behave(latency_ms=latency, decline_above=self._decline_above)

    def come_back(self) -> None:
        self.sandbox.behave(decline_above=self._decline_above)

    def charge_count(self) -> int:
        return self.sandbox.ledger.stats().charges

    def refunded_amount(self, charge_reference: str) -> int:
        detail = self.sandbox.ledger.charge_detail(charge_reference)
        return 0 if detail is None else detail.refunded_amount


@pytest.fixture(params=["fake", "sandbox"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "fake":
        yield FakeBackend()
        return
    # A breaker that does not trip during the contract: tripping is tested on its own.
    breaker = CircuitBreaker("payments", MemoryBreakerStore(), failure_threshold=100)
    with running_sandbox() as sandbox:
        client = HttpPaymentProvider(
            sandbox.url, breaker, connect_timeout_seconds=2.0, read_timeout_seconds=READ_TIMEOUT
        )
        with client:
            yield SandboxBackend(sandbox, client)


def _key() -> str:
    return f"test-{uuid.uuid4()}"


def _charged(backend: Backend, amount: int = DEPOSIT) -> str:
    result = backend.provider.charge(_key(), amount, f"reservation-{uuid.uuid4()}")
    assert result.approved
    return result.reference


class TestCharge:
    def test_an_approved_charge_carries_the_providers_reference_and_the_amount(
        self, backend: Backend
    ) -> None:
        result = backend.provider.charge(_key(), DEPOSIT, "reservation-1")
        assert result.approved
        assert result.reference
        assert result.amount == DEPOSIT
        assert result.reason is None
        assert backend.charge_count() == 1

    def test_the_same_key_gives_the_same_result_and_charges_once(self, backend: Backend) -> None:
        key = _key()
        first = backend.provider.charge(key, DEPOSIT, "reservation-1")
        again = backend.provider.charge(key, DEPOSIT, "reservation-1")
        assert again == first
        assert backend.charge_count() == 1

    def test_another_key_is_another_charge(self, backend: Backend) -> None:
        first = backend.provider.charge(_key(), DEPOSIT, "reservation-1")
        second = backend.provider.charge(_key(), DEPOSIT, "reservation-1")
        assert first.reference != second.reference
        assert backend.charge_count() == 2

    def test_a_decline_is_a_result_with_its_reason(self, backend: Backend) -> None:
        backend.decline_above(DEPOSIT - 1)
        result = backend.provider.charge(_key(), DEPOSIT, "reservation-1")
        assert not result.approved
        assert result.reason
        assert result.amount == DEPOSIT

    def test_a_declined_key_stays_declined_when_the_rules_change(self, backend: Backend) -> None:
        backend.decline_above(DEPOSIT - 1)
        key = _key()
        declined = backend.provider.charge(key, DEPOSIT, "reservation-1")
        backend.decline_above(None)
        assert backend.provider.charge(key, DEPOSIT, "reservation-1") == declined

    def test_a_key_reused_for_another_charge_is_refused(self, backend: Backend) -> None:
        key = _key()
        backend.provider.charge(key, DEPOSIT, "reservation-1")
        with pytest.raises(PaymentProtocolError):
            backend.provider.charge(key, DEPOSIT + 1, "reservation-1")
        assert backend.charge_count() == 1

    @pytest.mark.parametrize("amount", [0, -500, True, 1.5])
    def test_only_whole_krw_above_zero(self, backend: Backend, amount: int) -> None:
        with pytest.raises(ValueError):
            backend.provider.charge(_key(), amount, "reservation-1")
        assert backend.charge_count() == 0


class TestRefund:
    def test_a_refund_happens_once_and_its_key_replays_it(self, backend: Backend) -> None:
        charge = _charged(backend)
        key = _key()
        first = backend.provider.refund(key, charge, DEPOSIT)
        again = backend.provider.refund(key, charge, DEPOSIT)
        assert first.approved
        assert first.reference
        assert (first.charge_reference, first.amount) == (charge, DEPOSIT)
        assert again == first
        assert backend.refunded_amount(charge) == DEPOSIT

    def test_partial_refunds_add_up_to_the_charge(self, backend: Backend) -> None:
        charge = _charged(backend)
        assert backend.provider.refund(_key(), charge, 4_000).approved
        assert backend.provider.refund(_key(), charge, 6_000).approved
        assert backend.refunded_amount(charge) == DEPOSIT

    def test_more_than_the_charge_is_declined_and_nothing_is_refunded(
        self, backend: Backend
    ) -> None:
        charge = _charged(backend)
        result = backend.provider.refund(_key(), charge, DEPOSIT + 1)
        assert not result.approved
        assert result.reason == REFUND_EXCEEDS_CHARGE
        assert backend.refunded_amount(charge) == 0

    def test_a_second_full_refund_under_another_key_is_declined(self, backend: Backend) -> None:
        charge = _charged(backend)
        assert backend.provider.refund(_key(), charge, DEPOSIT).approved
        second = backend.provider.refund(_key(), charge, DEPOSIT)
        assert (second.approved, second.reason) == (False, REFUND_EXCEEDS_CHARGE)
        assert backend.refunded_amount(charge) == DEPOSIT

    def test_an_unknown_charge_is_declined(self, backend: Backend) -> None:
        result = backend.provider.refund(_key(), "ch_unknown", DEPOSIT)
        assert (result.approved, result.reason) == (False, CHARGE_NOT_FOUND)

    def test_a_declined_charge_cannot_be_refunded(self, backend: Backend) -> None:
        backend.decline_above(DEPOSIT - 1)
        declined = backend.provider.charge(_key(), DEPOSIT, "reservation-1")
        result = backend.provider.refund(_key(), declined.reference, DEPOSIT)
        assert (result.approved, result.reason) == (False, CHARGE_NOT_REFUNDABLE)


class TestUnavailable:
    def test_a_provider_that_is_down_raises_and_the_same_key_later_charges_once(
        self, backend: Backend
    ) -> None:
        key = _key()
        backend.go_down()
        with pytest.raises(PaymentUnavailable):
            backend.provider.charge(key, DEPOSIT, "reservation-1")
        assert backend.charge_count() == 0
        backend.come_back()
        assert backend.provider.charge(key, DEPOSIT, "reservation-1").approved
        assert backend.charge_count() == 1

    def test_a_lost_answer_is_recovered_by_retrying_with_the_same_key(
        self, backend: Backend
    ) -> None:
        key = _key()
        backend.lose_next_answer()
        with pytest.raises(PaymentUnavailable):
            backend.provider.charge(key, DEPOSIT, "reservation-1")
        backend.come_back()
        assert backend.provider.charge(key, DEPOSIT, "reservation-1").approved
        assert backend.charge_count() == 1

    def test_a_refund_while_down_raises_and_refunds_nothing(self, backend: Backend) -> None:
        charge = _charged(backend)
        backend.go_down()
        with pytest.raises(PaymentUnavailable):
            backend.provider.refund(_key(), charge, DEPOSIT)
        backend.come_back()
        assert backend.refunded_amount(charge) == 0
