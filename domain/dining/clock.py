"""Time as Dining sees it: an injected clock, so that rules about "before the slot" and saga
deadlines can be tested at any instant."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The system clock, timezone-aware."""
    return dt.datetime.now(dt.UTC)
