"""An in-memory payment provider for tests of the parts that use one (deposit handlers...).

It keeps its books in the sandbox's ``SandboxLedger``, so its semantics are the sandbox's by
construction (idempotent charges and refunds, declines, refund limits); the contract suite
(``tests/integration/payments/test_contract.py``) holds it and the HTTP client to the same
behaviour. On top, tests program faults: unavailability for the next calls or until further
notice, and lost answers (the provider acted, the caller saw a timeout).
"""

from __future__ import annotations

import threading

import msgspec

from domain.payments import (
    ChargeResult,
    PaymentProtocolError,
    PaymentUnavailable,
    RefundResult,
    require_amount,
    require_key,
)
from haengbok.payments.sandbox_ledger import Behaviour, KeyReused, Refused, SandboxLedger


class FakePaymentProvider:
    """``PaymentProvider`` in memory; thread-safe, like the real client."""

    def __init__(self, seed: int = 0) -> None:
        self.ledger = SandboxLedger(seed)
        self._lock = threading.Lock()
        self._down = False
        self._failures_left = 0
        self._lost_answers_left = 0
        self.calls = 0

    # -- programming the fake --------------------------------------------------------------

    def decline_above(self, amount: int | None) -> None:
        """Decline charges of more than ``amount`` KRW (None: stop)."""
        self.ledger.behaviour = self._behaviour(decline_above=amount)

    def decline_every_charge(self, on: bool = True) -> None:
        """Decline every new charge (``card_declined``) until called with False."""
        self.ledger.behaviour = self._behaviour(decline_rate=1.0 if on else 0.0)

    def go_down(self) -> None:
        """Every call raises ``PaymentUnavailable`` (nothing recorded) until ``come_back``."""
        with self._lock:
            self._down = True

    def come_back(self) -> None:
        with self._lock:
            self._down, self._failures_left = False, 0

    def fail_next(self, calls: int = 1) -> None:
        """The next ``calls`` calls raise ``PaymentUnavailable`` before recording anything."""
        with self._lock:
            self._failures_left += calls

    def lose_next_answers(self, calls: int = 1) -> None:
        """The next ``calls`` calls take effect, then raise ``PaymentUnavailable`` (a timeout
        after the provider acted): a retry with the same key must see that effect."""
        with self._lock:
            self._lost_answers_left += calls

    # -- looking inside ----------------------------------------------------------------------

    def charge_count(self) -> int:
        """Charges recorded (approved and declined), replays not counted."""
        return self.ledger.stats().charges

    def refunded_amount(self, charge_reference: str) -> int:
        """KRW refunded so far on the charge (0 for an unknown one)."""
        detail = self.ledger.charge_detail(charge_reference)
        return 0 if detail is None else detail.refunded_amount

    # -- the port ----------------------------------------------------------------------------

    def charge(self, idempotency_key: str, amount: int, reference: str) -> ChargeResult:
        """Same semantics as the sandbox's ``POST /charges``."""
        require_key(idempotency_key)
        require_amount(amount)
        self._enter()
        try:
            view, _replayed = self.ledger.charge(idempotency_key, amount, reference)
        except KeyReused as exc:
            raise PaymentProtocolError(str(exc)) from exc
        self._leave()
        if view.status == "approved":
            return ChargeResult(approved=True, reference=view.id, amount=view.amount)
        reason = view.decline_reason or "declined"
        return ChargeResult(approved=False, reference=view.id, amount=view.amount, reason=reason)

    def refund(self, idempotency_key: str, charge_reference: str, amount: int) -> RefundResult:
        """Same semantics as the sandbox's ``POST /charges/{id}/refunds``."""
        require_key(idempotency_key)
        require_amount(amount)
        self._enter()
        try:
            refund, _replayed = self.ledger.refund(idempotency_key, charge_reference, amount)
        except KeyReused as exc:
            raise PaymentProtocolError(str(exc)) from exc
        except Refused as refused:
            return RefundResult(
                approved=False, reference="", charge_reference=charge_reference, amount=amount,
                reason=refused.code,
            )  # fmt: skip
        self._leave()
        return RefundResult(
            approved=True, reference=refund.id, charge_reference=charge_reference,
            amount=refund.amount,
        )  # fmt: skip

    def _enter(self) -> None:
        with self._lock:
            self.calls += 1
            if self._down:
                raise PaymentUnavailable("fake provider is down")
            if self._failures_left:
                self._failures_left -= 1
                raise PaymentUnavailable("fake provider failed this call")

    def _leave(self) -> None:
        with self._lock:
            if self._lost_answers_left:
                self._lost_answers_left -= 1
                raise PaymentUnavailable("fake provider's answer was lost (it did act)")

    def _behaviour(self, **changes: float | int | None) -> Behaviour:
        return msgspec.structs.replace(self.ledger.behaviour, **changes)
