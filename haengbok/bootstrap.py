"""The composition root: which controllers, subscribers and projectors make up the system.

Product lines (Dining, Cinema) register here; the platform packages never import them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from litestar import Litestar

from haengbok.settings import Settings
from outbox.consumers import Subscriber
from projections.projector import Projector

if TYPE_CHECKING:
    from api.problems import ProblemRegistry
    from domain.payments import PaymentProvider

# Seconds a reservation saga waits for the deposit or recommendation context before it gives
# up (rejects and refunds). TODO(lead): move into Settings with the other knobs.
DINING_STEP_DEADLINE_ENV = "HAENGBOK_DINING_STEP_DEADLINE_SECONDS"


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
    from domain.dining.saga import DEFAULT_STEP_DEADLINE_MS

    settings = settings or Settings.from_env()
    provider = payment_provider or _payment_provider(settings, database_url)
    deadline_seconds = os.environ.get(DINING_STEP_DEADLINE_ENV)
    step_deadline_ms = (
        int(float(deadline_seconds) * 1000) if deadline_seconds else DEFAULT_STEP_DEADLINE_MS
    )
    return [*dining_subscribers(provider, step_deadline_ms=step_deadline_ms)]


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
    """uvicorn factory (``haengbok.bootstrap:asgi_app``) for multi-process serving."""
    from haengbok.logs import configure_logging

    settings = Settings.from_env()
    if not settings.database_url:
        raise SystemExit("DATABASE_URL must be set for the API (haengbok api sets it)")
    configure_logging(settings)
    return build_api(settings)
