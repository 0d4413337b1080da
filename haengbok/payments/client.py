"""The payment provider port over HTTP (``domain.payments.PaymentProvider``).

Synchronous on purpose: deposit handlers run in Dramatiq worker threads, each inside its own
database transaction; one urllib3 pool (thread-safe, kept-alive connections) serves them all.
urllib3 rather than httpx: a charge is one small POST, and with httpx it cost 1.6-1.8 times
the CPU (a tenth of a worker's Python time went there; tests/bench/bench_payment_client).

Every call goes through a circuit breaker (``haengbok.payments.breaker``): timeouts, connection
errors, 429 and 5xx answers count as failures and become ``PaymentUnavailable``; enough of them
open the circuit, after which calls fail fast without any request until the cool-down ends.
Declines, and 4xx answers generally, mean the provider is up: they are results (or a
``PaymentProtocolError`` for a malformed request), never failures of the breaker.
"""

from __future__ import annotations

from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote

import msgspec
import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

from domain.payments import (
    CHARGE_NOT_FOUND,
    CHARGE_NOT_REFUNDABLE,
    REFUND_EXCEEDS_CHARGE,
    ChargeResult,
    PaymentProtocolError,
    PaymentUnavailable,
    RefundResult,
    require_amount,
    require_key,
)
from haengbok.payments.breaker import CircuitBreaker, CircuitOpen
from haengbok.payments.breaker_store import PostgresBreakerStore
from haengbok.settings import Settings

S = TypeVar("S")

IDEMPOTENCY_HEADER = "Idempotency-Key"
JSON_HEADERS = {"User-Agent": "haengbok-payments", "Content-Type": "application/json"}
BREAKER_NAME = "payments"
_REFUND_DECLINES = frozenset({CHARGE_NOT_FOUND, CHARGE_NOT_REFUNDABLE, REFUND_EXCEEDS_CHARGE})


class _Charge(msgspec.Struct):
    id: str
    amount: int
    status: Literal["approved", "declined"]
    decline_reason: str | None = None


class _Refund(msgspec.Struct):
    id: str
    amount: int


class _Error(msgspec.Struct):
    code: str
    detail: str = ""


class HttpPaymentProvider:
    """Charges and refunds at the provider behind ``base_url``; close it when done."""

    def __init__(
        self,
        base_url: str,
        breaker: CircuitBreaker,
        *,
        connect_timeout_seconds: float = 2.0,
        read_timeout_seconds: float = 5.0,
        # Kept-alive connections: a deposit batch's charges (up to 16 at once) plus the refunds
        # and forfeits worker threads make meanwhile; with 16, urllib3 discarded the surplus.
        max_connections: int = 32,
    ) -> None:
        self.breaker = breaker
        self._owned_store: PostgresBreakerStore | None = None  # closed with the client
        self._prefix = (urllib3.util.parse_url(base_url).path or "").rstrip("/")
        # One host, so its connection pool itself rather than a PoolManager, which parses the
        # URL and looks the pool up again on every request (bench_payment_client: 326-358 vs
        # 348-366 µs of CPU per charge, within the noise; one layer less).
        self._http = urllib3.connection_from_url(
            base_url,
            # block=False: a thread beyond maxsize opens a connection of its own instead of
            # waiting for a pooled one (it is closed afterwards, not kept).
            maxsize=max_connections, block=False,
            timeout=urllib3.Timeout(connect=connect_timeout_seconds, read=read_timeout_seconds),
            # No retries here: a retry is a new delivery with the same idempotency key.
            retries=False,
        )  # fmt: skip

    @classmethod
    def from_settings(cls, settings: Settings, database_url: str) -> Self:
        """The production wiring: the provider at ``settings.payment_url`` behind the
        ``payments`` breaker, whose state every process shares in ``ops.circuit_breaker``."""
        store = PostgresBreakerStore(database_url)
        breaker = CircuitBreaker(
            BREAKER_NAME,
            store,
            failure_threshold=settings.payment_breaker_failures,
            cool_down_seconds=settings.payment_breaker_cool_down_seconds,
            trial_timeout_seconds=(
                settings.payment_connect_timeout_seconds + settings.payment_read_timeout_seconds + 1
            ),
            failure_types=(PaymentUnavailable,),
        )
        client = cls(
            settings.payment_url,
            breaker,
            connect_timeout_seconds=settings.payment_connect_timeout_seconds,
            read_timeout_seconds=settings.payment_read_timeout_seconds,
        )
        client._owned_store = store
        return client

    def charge(self, idempotency_key: str, amount: int, reference: str) -> ChargeResult:
        """Authorize and capture; a decline is a result, ``PaymentUnavailable`` means retry."""
        require_key(idempotency_key)
        require_amount(amount)
        body = {"amount": amount, "reference": reference}
        response = self._post("/charges", idempotency_key, body)
        if response.status not in (200, 201):
            raise _protocol_error("charge", response)
        charge = _decode(response, _Charge)
        if charge.status == "approved":
            return ChargeResult(approved=True, reference=charge.id, amount=charge.amount)
        reason = charge.decline_reason or "declined"
        return ChargeResult(
            approved=False, reference=charge.id, amount=charge.amount, reason=reason
        )

    def refund(self, idempotency_key: str, charge_reference: str, amount: int) -> RefundResult:
        """Refund once per key; an unknown charge or too large an amount is declined."""
        require_key(idempotency_key)
        require_amount(amount)
        path = f"/charges/{quote(charge_reference, safe='')}/refunds"
        response = self._post(path, idempotency_key, {"amount": amount})
        if response.status in (200, 201):
            refund = _decode(response, _Refund)
            return RefundResult(
                approved=True, reference=refund.id, charge_reference=charge_reference,
                amount=refund.amount,
            )  # fmt: skip
        if response.status in (404, 409):
            error = _decode(response, _Error)
            if error.code in _REFUND_DECLINES:
                return RefundResult(
                    approved=False, reference="", charge_reference=charge_reference,
                    amount=amount, reason=error.code,
                )  # fmt: skip
        raise _protocol_error("refund", response)

    def close(self) -> None:
        """Close the pooled HTTP connections (and the breaker store's, if it made it)."""
        self._http.close()
        if self._owned_store is not None:
            self._owned_store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _post(self, path: str, key: str, body: dict[str, Any]) -> urllib3.BaseHTTPResponse:
        url, payload = self._prefix + path, msgspec.json.encode(body)

        def send() -> urllib3.BaseHTTPResponse:
            try:
                response = self._http.urlopen(
                    "POST", url, body=payload, headers={**JSON_HEADERS, IDEMPOTENCY_HEADER: key},
                    redirect=False,
                )  # fmt: skip
            except NewConnectionError as exc:  # (a subclass of the timeout error in urllib3)
                raise PaymentUnavailable(f"payment provider unreachable ({exc!r})") from exc
            except TimeoutError as exc:
                # The provider may have acted: only a retry with the same key tells.
                raise PaymentUnavailable(f"payment provider timed out ({exc!r})") from exc
            except HTTPError as exc:
                raise PaymentUnavailable(f"payment provider unreachable ({exc!r})") from exc
            if response.status >= 500 or response.status == 429:
                raise PaymentUnavailable(
                    f"payment provider answered {response.status}", _retry_after(response)
                )
            return response

        try:
            return self.breaker.call(send)
        except CircuitOpen as exc:
            raise PaymentUnavailable(str(exc), exc.retry_after_seconds) from exc


def _retry_after(response: urllib3.BaseHTTPResponse) -> float | None:
    raw = response.headers.get("Retry-After", "")
    return float(raw) if raw.isdigit() else None


def _decode(response: urllib3.BaseHTTPResponse, shape: type[S]) -> S:
    try:
        return msgspec.json.decode(response.data, type=shape)
    except msgspec.DecodeError as exc:
        raise PaymentProtocolError(
            f"unreadable answer from the payment provider ({response.status}): {exc}"
        ) from exc


def _protocol_error(what: str, response: urllib3.BaseHTTPResponse) -> PaymentProtocolError:
    text = response.data[:300].decode("utf-8", errors="replace")
    return PaymentProtocolError(
        f"the payment provider refused the {what} request: {response.status} {text}"
    )
