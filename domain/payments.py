"""The payment provider as the domain sees it: a port, its results and its one transient error.

Charges authorize and capture in one step; amounts are whole KRW (``int`` > 0). Every call
carries an idempotency key: the same key always gives the same result and never a second
charge or refund, so a caller that lost an answer (timeout, crash) simply calls again with
the same key. Callers derive the key from the message they handle
(``HandlerContext.idempotency_key``), so every redelivery repeats the same request.

A decline is an answer, not an error: it comes back as a result with ``approved=False`` and a
reason. Only "the provider cannot answer now" is an exception (``PaymentUnavailable``): the
caller retries later with the same key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class PaymentUnavailable(Exception):
    """Timeout, 5xx, connection failure or an open circuit: nothing is known to have happened.

    Retrying with the same idempotency key is always safe. ``retry_after_seconds`` is a hint
    (the rest of an open circuit's cool-down), or None when there is nothing better to say.
    ``transient`` tells the message runtime that this says nothing about the message: it is
    retried with backoff without using up an attempt, so an outage never dead-letters deposits
    (the saga's deadline decides when waiting has lasted too long).
    """

    transient = True

    def __init__(self, detail: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class PaymentProtocolError(Exception):
    """The provider refused the request itself (malformed, or an idempotency key reused for a
    different request) or answered something unreadable: a bug, not a decline, and retrying
    will not help."""


@dataclass(frozen=True, slots=True)
class ChargeResult:
    """The provider's answer to a charge. ``reference`` is the provider's charge id; declined
    charges have one too (support look-ups). ``reason`` says why it was declined."""

    approved: bool
    reference: str
    amount: int
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.approved == (self.reason is not None):
            raise ValueError("a declined result needs a reason and an approved one has none")


@dataclass(frozen=True, slots=True)
class RefundResult:
    """The provider's answer to a refund. ``reference`` is the refund's id (empty when it was
    declined before one existed); ``reason`` says why it was declined, e.g. more than the
    charge's refundable rest, an unknown charge, or a charge that was never approved."""

    approved: bool
    reference: str
    charge_reference: str
    amount: int
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.approved == (self.reason is not None):
            raise ValueError("a declined result needs a reason and an approved one has none")


# Decline reasons every provider adapter (and the fake) reports for refunds.
REFUND_EXCEEDS_CHARGE = "refund_exceeds_charge"
CHARGE_NOT_FOUND = "charge_not_found"
CHARGE_NOT_REFUNDABLE = "charge_not_refundable"


def require_amount(amount: int) -> None:
    """Reject an amount that is not whole KRW above zero before anything is sent."""
    # bool is an int subclass; True would otherwise be a 1 KRW charge.
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(f"amount must be a whole number of KRW above zero, not {amount!r}")


def require_key(idempotency_key: str) -> None:
    """Reject an empty idempotency key: without one a retry could charge twice."""
    if not idempotency_key or len(idempotency_key) > 255:
        raise ValueError("an idempotency key of 1 to 255 characters is required")


class PaymentProvider(Protocol):
    """Charges and refunds at an external provider. Implementations: the HTTP client
    (``haengbok.payments.client``) and the in-memory fake (``haengbok.payments.fake``)."""

    def charge(self, idempotency_key: str, amount: int, reference: str) -> ChargeResult:
        """Authorize and capture ``amount`` KRW; ``reference`` is ours (e.g. the reservation)."""
        ...

    def refund(self, idempotency_key: str, charge_reference: str, amount: int) -> RefundResult:
        """Give back ``amount`` KRW of the charge; more than its refundable rest is declined."""
        ...
