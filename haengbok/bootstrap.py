"""The composition root: which controllers, subscribers and projectors make up the system.

Product lines (Dining, Cinema) register here; the platform packages never import them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from litestar import Litestar

from haengbok.settings import Settings
from outbox.consumers import Subscriber
from projections.projector import Projector

if TYPE_CHECKING:
    from api.problems import ProblemRegistry
    from domain.payments import PaymentProvider


def controllers() -> list[Any]:
    from api.dining.commands import controllers as dining_commands
    from api.dining.queries import QUERY_CONTROLLERS as DINING_QUERIES
    from api.ops import OpsController

    # Dining's commands and queries share one /dining router (they share paths).
    return [OpsController, *dining_commands(alongside=DINING_QUERIES)]


def problems() -> ProblemRegistry:
    """The platform's problem mappings plus every product line's domain errors."""
    from api.dining.problems import register_problems
    from api.problems import default_problems

    return register_problems(default_problems())


def subscribers(
    settings: Settings | None = None,
    database_url: str | None = None,
    *,
    payment_provider: PaymentProvider | None = None,
) -> list[Subscriber]:
    """Every product line's subscribers. Without ``payment_provider`` the deposit handler
    calls the provider at ``settings.payment_url`` through the shared circuit breaker."""
    from api.dining.subscribers import subscribers as dining_subscribers

    settings = settings or Settings.from_env()
    provider = payment_provider or _payment_provider(settings, database_url)
    step_deadline_ms = int(settings.dining_step_deadline_seconds * 1000)
    return [
        *dining_subscribers(
            provider, step_deadline_ms=step_deadline_ms, batch_size=settings.consumer_batch_size
        )
    ]


def record_routes(settings: Settings, database_url: str) -> int:
    """Record every subscriber's route and create its queue, whichever workers run.

    The relay sends a message only to subscriptions it knows; a context whose worker has not
    started yet must still get its messages queued (they wait for it), so `migrate`, `up` and
    every worker record the full list, not just the subscribers they run themselves.
    """
    import psycopg

    from domain.payments import ChargeResult, RefundResult
    from outbox.consumers import routes
    from outbox.relay import sync_routes

    class _NoPayments:  # routes only; no handler runs here
        def charge(self, idempotency_key: str, amount: int, reference: str) -> ChargeResult:
            raise NotImplementedError

        def refund(self, idempotency_key: str, charge_reference: str, amount: int) -> RefundResult:
            raise NotImplementedError

    known = routes(subscribers(settings, database_url, payment_provider=_NoPayments()))
    with psycopg.connect(database_url) as conn:
        sync_routes(conn, known)
    return len(known)


def _payment_provider(settings: Settings, database_url: str | None) -> PaymentProvider:
    from haengbok.payments.client import HttpPaymentProvider

    url = database_url or settings.database_url
    if not url:
        # The breaker's shared state lives in the database; the worker knows its URL.
        raise SystemExit("the payment provider's circuit breaker needs DATABASE_URL")
    return HttpPaymentProvider.from_settings(settings, url)


def projectors() -> list[Projector]:
    from projections.dining import projectors as dining_projectors

    return [*dining_projectors()]


def build_api(settings: Settings, extra_controllers: Sequence[Any] = ()) -> Litestar:
    from api.app import create_app

    return create_app(
        settings, controllers=[*controllers(), *extra_controllers], problems=problems()
    )


def asgi_app() -> Litestar:
    """uvicorn factory (``uvicorn --factory haengbok.bootstrap:asgi_app``), for running the API
    under a server of your own; ``haengbok api`` builds its app directly."""
    from haengbok.logs import configure_logging

    settings = Settings.from_env()
    if not settings.database_url:
        raise SystemExit("DATABASE_URL must be set for the API (haengbok api sets it)")
    configure_logging(settings)
    return build_api(settings)
