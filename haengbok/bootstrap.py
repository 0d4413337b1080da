"""The composition root: which controllers, subscribers and projectors make up the system.

Product lines (Dining, Cinema) register here; the platform packages never import them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Litestar

from haengbok.settings import Settings
from outbox.consumers import Subscriber
from projections.projector import Projector


def controllers() -> list[Any]:
    from api.ops import OpsController

    return [OpsController]


def subscribers() -> list[Subscriber]:
    return []


def projectors() -> list[Projector]:
    return []


def build_api(settings: Settings, extra_controllers: Sequence[Any] = ()) -> Litestar:
    from api.app import create_app

    return create_app(settings, controllers=[*controllers(), *extra_controllers])


def asgi_app() -> Litestar:
    """uvicorn factory (``haengbok.bootstrap:asgi_app``) for multi-process serving."""
    from haengbok.logs import configure_logging

    settings = Settings.from_env()
    if not settings.database_url:
        raise SystemExit("DATABASE_URL must be set for the API (haengbok api sets it)")
    configure_logging(settings)
    return build_api(settings)
