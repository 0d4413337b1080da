"""The sandbox payment provider: a small HTTP app that behaves like a card processor, for demos
and tests. ``haengbok payments-sandbox`` serves it; ``haengbok up`` runs it as a child process.

Payment API (every POST needs an ``Idempotency-Key`` header; the same key with the same
request answers the first answer again, marked ``Idempotent-Replayed: true``, and never
charges or refunds twice; the same key with a different request is a 422):

- ``POST /charges`` ``{"amount": 5000, "reference": "reservation-..."}``: authorize and
  capture in one step; 201 with ``status`` ``approved`` or ``declined`` (+ ``decline_reason``).
- ``POST /charges/{id}/refunds`` ``{"amount": 5000}``: 201; 404 for an unknown charge, 409 for
  a declined charge or more than its refundable rest (``code`` says which).
- ``GET /charges/{id}``: the charge now, with its refunds.

Admin API (not subject to the injected faults): ``GET|PUT /admin/behaviour`` (latency and
jitter in ms, failure rate answered with 503, decline rate, decline above an amount),
``GET /admin/stats`` (payment requests received, charges, refunds), ``GET /health``.

State lives in memory (``SandboxLedger``): a restart forgets every charge. That is acceptable
for a sandbox and only for a sandbox.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import Controller, Litestar, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath, HeaderParameter, JSONBody

from domain.payments import CHARGE_NOT_FOUND
from haengbok.payments.sandbox_ledger import (
    Behaviour,
    ChargeDetail,
    KeyReused,
    Refused,
    SandboxLedger,
    Stats,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

Key = Annotated[str, HeaderParameter(name=IDEMPOTENCY_HEADER, min_length=1, max_length=255)]


class ChargeRequest(msgspec.Struct, forbid_unknown_fields=True):
    amount: Annotated[int, msgspec.Meta(gt=0)]
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class RefundRequest(msgspec.Struct, forbid_unknown_fields=True):
    amount: Annotated[int, msgspec.Meta(gt=0)]


class ErrorBody(msgspec.Struct):
    code: str
    detail: str


class _Unavailable(Exception):
    """The injected failure: answered 503 before anything is recorded."""


def _ledger(request: Request[Any, Any, Any]) -> SandboxLedger:
    ledger: SandboxLedger = request.app.state.ledger
    return ledger


async def _misbehave(ledger: SandboxLedger) -> float:
    """Apply the behaviour to one payment request: maybe fail (after the delay), else return
    the delay to wait after the work, so that a slow answer still has its effect recorded
    (a client that times out and retries with the same key then sees the replay)."""
    plan = ledger.plan()
    if plan.fail:
        await asyncio.sleep(plan.delay_seconds)
        raise _Unavailable
    return plan.delay_seconds


def _answer(body: msgspec.Struct, replayed: bool) -> Response[msgspec.Struct]:
    headers = {REPLAYED_HEADER: "true"} if replayed else {}
    return Response(body, status_code=201, headers=headers)


class ChargesController(Controller):
    path = "/charges"

    @post("/", operation_id="createCharge", status_code=201)
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[ChargeRequest], key: Key
    ) -> Response[msgspec.Struct]:
        """Authorize and capture; approved or declined, once per idempotency key."""
        ledger = _ledger(request)
        delay = await _misbehave(ledger)
        view, replayed = ledger.charge(key, data.amount, data.reference)
        await asyncio.sleep(delay)
        return _answer(view, replayed)

    @post("/{charge_id:str}/refunds", operation_id="createRefund", status_code=201)
    async def refund(
        self,
        request: Request[Any, Any, Any],
        charge_id: FromPath[str],
        data: JSONBody[RefundRequest],
        key: Key,
    ) -> Response[msgspec.Struct]:
        """Refund part or all of an approved charge, once per idempotency key."""
        ledger = _ledger(request)
        delay = await _misbehave(ledger)
        refund, replayed = ledger.refund(key, charge_id, data.amount)
        await asyncio.sleep(delay)
        return _answer(refund, replayed)

    @get("/{charge_id:str}", operation_id="getCharge")
    async def detail(
        self, request: Request[Any, Any, Any], charge_id: FromPath[str]
    ) -> ChargeDetail:
        """The charge as it is now, with its refunds."""
        ledger = _ledger(request)
        delay = await _misbehave(ledger)
        found = ledger.charge_detail(charge_id)
        await asyncio.sleep(delay)
        if found is None:
            raise Refused(CHARGE_NOT_FOUND, f"no charge {charge_id}", 404)
        return found


class AdminController(Controller):
    path = "/admin"

    @get("/behaviour", operation_id="getBehaviour")
    async def get_behaviour(self, request: Request[Any, Any, Any]) -> Behaviour:
        """The behaviour in force."""
        return _ledger(request).behaviour

    @put("/behaviour", operation_id="putBehaviour")
    async def put_behaviour(
        self, request: Request[Any, Any, Any], data: JSONBody[Behaviour]
    ) -> Behaviour:
        """Replace the behaviour (omitted fields take their well-behaved defaults)."""
        _ledger(request).behaviour = data
        return data

    @get("/stats", operation_id="getStats")
    async def stats(self, request: Request[Any, Any, Any]) -> Stats:
        """Payment requests received so far, charges and refunds recorded."""
        return _ledger(request).stats()


@get("/health", operation_id="getHealth")
async def health() -> dict[str, str]:
    """Liveness for the supervisor, probes and tests."""
    return {"status": "ok"}


def _error(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> Response[ErrorBody]:
    return Response(ErrorBody(code, detail), status_code=status, headers=headers or {})


def _key_reused(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    return _error(422, "idempotency_key_reused", str(exc))


def _refused(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    assert isinstance(exc, Refused)
    return _error(exc.status, exc.code, str(exc))


def _unavailable(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    return _error(503, "unavailable", "injected failure", {"Retry-After": "1"})


def create_sandbox_app(ledger: SandboxLedger | None = None) -> Litestar:
    """The sandbox app over ``ledger`` (a fresh one by default; tests pass theirs to look in)."""
    return Litestar(
        route_handlers=[ChargesController, AdminController, health],
        state=State({"ledger": ledger or SandboxLedger()}),
        exception_handlers={
            KeyReused: _key_reused,
            Refused: _refused,
            _Unavailable: _unavailable,
        },
        logging_config=None,
    )
