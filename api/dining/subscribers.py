"""Dining's message subscribers: the reservation saga and each context's command handler.

Each context has a queue of its own, so one that is down (or slow) holds back only its own
messages: with the restaurant's subscriber stopped, reservations are still paid and wait in
``dining_restaurant`` until it is back.

The saga belongs to the reservation context: its commands to that context (record the deposit,
confirm, reject) run in the saga's own transaction (``SagaRunner(local=...)``). The
reservation's subscriber still handles them when they come through its queue: commands
appended before this was so are delivered there.
"""

from __future__ import annotations

from api.dining.deposits import ChargesAhead, RefundDeclined, deposit_handler
from api.dining.recommendations import handle_entry_command
from api.dining.reservations import handle_saga_command
from api.dining.restaurants import booking_lock_key, handle_booking_command
from domain.dining.clock import Clock, utc_now
from domain.dining.messages import (
    AcceptReservation,
    ConfirmReservation,
    DeleteRecommendationEntry,
    ForfeitDeposit,
    RecordDepositPaid,
    RefundDeposit,
    RegisterRecommendationEntry,
    RejectReservation,
    ReleaseReservation,
    TakeDeposit,
)
from domain.dining.saga import DEFAULT_STEP_DEADLINE_MS, ReservationSaga
from domain.payments import PaymentProtocolError, PaymentProvider
from outbox.consumers import Subscriber
from outbox.envelope import Envelope
from outbox.sagas import SagaRunner

RESTAURANT = "dining_restaurant"
RESERVATION = "dining_reservation"
DEPOSIT = "dining_deposit"
RECOMMENDATION = "dining_recommendation"
SAGA = f"saga_{ReservationSaga.saga_type}"
#: Messages per transaction for the subscribers that batch (HAENGBOK_CONSUMER_BATCH_SIZE).
DEFAULT_BATCH_SIZE = 32
#: A deposit batch's charges run at the same time, one thread each, at most this many (the
#: payment client keeps as many connections).
MAX_CONCURRENT_CHARGES = 16


def _by_reservation(env: Envelope) -> str:
    """A deposit batch's lock order: by reservation (the deposit rows' key)."""
    return str(env.payload.get("reservation_id"))


def reservation_saga(
    *, step_deadline_ms: int = DEFAULT_STEP_DEADLINE_MS, clock: Clock = utc_now
) -> SagaRunner:
    """The reservation saga's runtime, in the workers (its subscriber) and in the API, where
    a reservation's request starts its instance (``SagaRunner.start_now``): both must be built
    with the same step deadline. Its commands to the reservation context run in the saga's
    own transaction (``local``)."""
    own_context = {
        t: handle_saga_command
        for t in (RecordDepositPaid.TYPE, ConfirmReservation.TYPE, RejectReservation.TYPE)
    }
    return SagaRunner(
        ReservationSaga(step_deadline_ms=step_deadline_ms, clock=clock),
        local=own_context,
        starts_in_commands=True,
    )


def subscribers(
    payment_provider: PaymentProvider,
    *,
    step_deadline_ms: int = DEFAULT_STEP_DEADLINE_MS,
    clock: Clock = utc_now,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[Subscriber]:
    """Every Dining subscriber; ``payment_provider`` is the real client or a fake.

    The saga, the restaurant and the recommendation subscribers run up to ``batch_size``
    messages per transaction (``outbox.consumers.deliver_batch``); the deposit's up to
    ``MAX_CONCURRENT_CHARGES``, whose charges go to the payment provider together before its
    handlers run (``api.dining.deposits.ChargesAhead``).
    """
    # A deposit batch's charges run at once, one thread each: at most MAX_CONCURRENT_CHARGES,
    # so a batch takes about one charge's time (within the payment client's timeouts, well
    # under the actor's time limit) however slow the provider is.
    deposit_batch = min(batch_size, MAX_CONCURRENT_CHARGES)
    charges_ahead = ChargesAhead(payment_provider, deposit_batch)
    saga = reservation_saga(step_deadline_ms=step_deadline_ms, clock=clock)
    return [
        saga.subscriber(batch_size=batch_size),
        Subscriber(
            RESTAURANT,
            frozenset({AcceptReservation.TYPE, ReleaseReservation.TYPE}),
            handle_booking_command,
            batch_size=batch_size,
            batch_key=booking_lock_key,
        ),
        Subscriber(
            RESERVATION,
            frozenset({RecordDepositPaid.TYPE, ConfirmReservation.TYPE, RejectReservation.TYPE}),
            handle_saga_command,
        ),
        Subscriber(
            DEPOSIT,
            frozenset({TakeDeposit.TYPE, RefundDeposit.TYPE, ForfeitDeposit.TYPE}),
            deposit_handler(payment_provider, charges_ahead),
            # Retrying cannot fix these: park the message with its reason for an operator.
            # (PaymentUnavailable is transient: retried without using up attempts.)
            actor_options={"throws": (PaymentProtocolError, RefundDeclined)},
            batch_size=deposit_batch,
            batch_key=_by_reservation,
            prepare_batch=charges_ahead.prepare,
        ),
        Subscriber(
            RECOMMENDATION,
            frozenset({RegisterRecommendationEntry.TYPE, DeleteRecommendationEntry.TYPE}),
            handle_entry_command,
            batch_size=batch_size,
        ),
    ]
