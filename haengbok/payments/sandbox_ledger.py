"""The sandbox provider's books: charges, refunds, idempotency keys and the behaviour knobs.

Kept in process memory, which is enough for a sandbox (a restart forgets every charge; the
real provider is the system of record for money). Every method holds one ``threading.Lock``
for a few dictionary operations and never awaits inside it, so the books stay consistent
whether handlers run on the event loop or in threads.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec

from domain.payments import CHARGE_NOT_FOUND, CHARGE_NOT_REFUNDABLE, REFUND_EXCEEDS_CHARGE

DECLINE_AMOUNT_LIMIT = "amount_limit_exceeded"
DECLINE_CARD = "card_declined"


class Behaviour(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How the sandbox misbehaves; a PUT replaces all of it (``{}`` means well-behaved)."""

    latency_ms: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 0
    # Each answer's latency is latency_ms plus or minus up to jitter_ms (never below zero).
    jitter_ms: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 0
    # Share of payment requests answered 503 before anything is recorded.
    failure_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    decline_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    # Charges of more than this many KRW are declined.
    decline_above: Annotated[int, msgspec.Meta(gt=0)] | None = None


class ChargeView(msgspec.Struct, kw_only=True):
    id: str
    amount: int
    reference: str
    status: Literal["approved", "declined"]
    decline_reason: str | None
    refunded_amount: int
    created_at: datetime


class RefundView(msgspec.Struct, kw_only=True):
    id: str
    charge_id: str
    amount: int
    status: Literal["succeeded"]
    created_at: datetime


class ChargeDetail(ChargeView, kw_only=True):
    refunds: list[RefundView]


class Stats(msgspec.Struct, kw_only=True):
    """Payment requests that reached a handler (admin calls and malformed requests are not
    counted), charges and refunds recorded."""

    requests: int
    charges: int
    refunds: int


class KeyReused(Exception):
    """An idempotency key sent again with a different request."""


class Refused(Exception):
    """A request the books cannot take (an unknown charge, a refund too large); ``code``
    names why with the ``domain.payments`` reasons, ``status`` is the HTTP answer."""

    def __init__(self, code: str, detail: str, status: int) -> None:
        super().__init__(detail)
        self.code, self.status = code, status


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with one request: answer 503 or not, and how long to take."""

    fail: bool
    delay_seconds: float


@dataclass
class _Charge:
    view: ChargeView
    refunds: list[RefundView] = field(default_factory=list)


class SandboxLedger:
    """All state of one sandbox provider."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._behaviour = Behaviour()
        self._charges: dict[str, _Charge] = {}
        # key -> (request fingerprint, the first answer), replayed as is.
        self._charge_keys: dict[str, tuple[tuple[int, str], ChargeView]] = {}
        self._refund_keys: dict[str, tuple[tuple[str, int], RefundView]] = {}
        self._requests = 0

    @property
    def behaviour(self) -> Behaviour:
        with self._lock:
            return self._behaviour

    @behaviour.setter
    def behaviour(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._behaviour = behaviour

    def plan(self) -> Plan:
        """Count one payment request and draw its fate from the current behaviour."""
        with self._lock:
            self._requests += 1
            b = self._behaviour
            jitter = self._random.uniform(-b.jitter_ms, b.jitter_ms) if b.jitter_ms else 0.0
            fail = b.failure_rate > 0 and self._random.random() < b.failure_rate
            return Plan(fail=fail, delay_seconds=max(0.0, b.latency_ms + jitter) / 1000)

    def charge(self, key: str, amount: int, reference: str) -> tuple[ChargeView, bool]:
        """Record a charge (approved or declined) once per key; True when it is a replay."""
        with self._lock:
            known = self._charge_keys.get(key)
            if known is not None:
                if known[0] != (amount, reference):
                    raise KeyReused(f"idempotency key {key!r} was used for another charge")
                return known[1], True
            reason = self._decline_reason(amount)
            view = ChargeView(
                id=f"ch_{uuid.uuid4().hex}",
                amount=amount,
                reference=reference,
                status="approved" if reason is None else "declined",
                decline_reason=reason,
                refunded_amount=0,
                created_at=datetime.now(UTC),
            )
            self._charges[view.id] = _Charge(view)
            self._charge_keys[key] = ((amount, reference), view)
            return view, False

    def _decline_reason(self, amount: int) -> str | None:
        b = self._behaviour
        if b.decline_above is not None and amount > b.decline_above:
            return DECLINE_AMOUNT_LIMIT
        if b.decline_rate > 0 and self._random.random() < b.decline_rate:
            return DECLINE_CARD
        return None

    def refund(self, key: str, charge_id: str, amount: int) -> tuple[RefundView, bool]:
        """Refund once per key, never more than the charge's refundable rest."""
        with self._lock:
            known = self._refund_keys.get(key)
            if known is not None:
                if known[0] != (charge_id, amount):
                    raise KeyReused(f"idempotency key {key!r} was used for another refund")
                return known[1], True
            charge = self._charges.get(charge_id)
            if charge is None:
                raise Refused(CHARGE_NOT_FOUND, f"no charge {charge_id}", 404)
            if charge.view.status != "approved":
                raise Refused(CHARGE_NOT_REFUNDABLE, "the charge was declined", 409)
            rest = charge.view.amount - charge.view.refunded_amount
            if amount > rest:
                detail = f"{amount} KRW is more than the {rest} KRW left to refund"
                raise Refused(REFUND_EXCEEDS_CHARGE, detail, 409)
            refund = RefundView(
                id=f"re_{uuid.uuid4().hex}",
                charge_id=charge_id,
                amount=amount,
                status="succeeded",
                created_at=datetime.now(UTC),
            )
            charge.refunds.append(refund)
            charge.view = msgspec.structs.replace(
                charge.view, refunded_amount=charge.view.refunded_amount + amount
            )
            self._refund_keys[key] = ((charge_id, amount), refund)
            return refund, False

    def charge_detail(self, charge_id: str) -> ChargeDetail | None:
        """A charge as it is now, with its refunds."""
        with self._lock:
            charge = self._charges.get(charge_id)
            if charge is None:
                return None
            fields = msgspec.structs.asdict(charge.view)
            return ChargeDetail(**fields, refunds=list(charge.refunds))

    def stats(self) -> Stats:
        with self._lock:
            refunds = sum(len(c.refunds) for c in self._charges.values())
            return Stats(requests=self._requests, charges=len(self._charges), refunds=refunds)
