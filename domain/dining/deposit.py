"""The deposit context: the no-show protection a customer pays before a table is held.

A deposit is recorded once the provider has answered the charge: PAID or FAILED. A paid deposit
is later REFUNDED (cancel, rejection) or FORFEITED (no-show), each at most once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from domain.dining.errors import IllegalTransition
from domain.dining.messages import DepositFailed, DepositForfeited, DepositPaid, DepositRefunded


class DepositStatus(StrEnum):
    PAID = "PAID"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"
    FORFEITED = "FORFEITED"


@dataclass
class Deposit:
    """A reservation's deposit as the provider answered it; ``charge_reference`` is theirs."""

    reservation_id: uuid.UUID
    customer: str
    amount: int
    status: DepositStatus
    charge_reference: str
    failure_reason: str | None = None
    refund_reference: str | None = None

    @classmethod
    def paid(
        cls, reservation_id: uuid.UUID, customer: str, amount: int, charge_reference: str
    ) -> tuple[Deposit, DepositPaid]:
        """The provider approved the charge."""
        deposit = cls(reservation_id, customer, amount, DepositStatus.PAID, charge_reference)
        return deposit, DepositPaid(reservation_id, amount, charge_reference)

    @classmethod
    def failed(
        cls,
        reservation_id: uuid.UUID,
        customer: str,
        amount: int,
        charge_reference: str,
        reason: str,
    ) -> tuple[Deposit, DepositFailed]:
        """The provider declined the charge (``reason`` says why)."""
        deposit = cls(
            reservation_id, customer, amount, DepositStatus.FAILED, charge_reference, reason
        )
        return deposit, DepositFailed(reservation_id, reason)

    @property
    def is_refundable(self) -> bool:
        """Only a PAID deposit can still be refunded or forfeited."""
        return self.status is DepositStatus.PAID

    def refunded(self, refund_reference: str) -> DepositRefunded:
        """The provider gave the money back."""
        self._require_paid("refunded")
        self.status, self.refund_reference = DepositStatus.REFUNDED, refund_reference
        return DepositRefunded(self.reservation_id, self.amount)

    def forfeit(self) -> DepositForfeited:
        """The party did not come: the restaurant keeps the deposit."""
        self._require_paid("forfeited")
        self.status = DepositStatus.FORFEITED
        return DepositForfeited(self.reservation_id, self.amount)

    def _require_paid(self, becoming: str) -> None:
        if self.status is not DepositStatus.PAID:
            raise IllegalTransition(f"a {self.status} deposit cannot be {becoming}")
