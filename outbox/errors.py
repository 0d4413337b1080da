"""Which failures are the infrastructure's, not the message's."""

from __future__ import annotations

import psycopg
from dramatiq.errors import BrokerConnectionError
from psycopg_pool import PoolTimeout

# SQLSTATEs that mean "the server went away or is not accepting us right now".
_TRANSIENT_STATES = {"57P01", "57P02", "57P03", "53300"}


def is_transient(exc: BaseException) -> bool:
    """True for a lost or refused database connection (a restart, a failover, a full pool), or an
    exception that declares itself ``transient`` (an outside service that is down).

    Such a failure says nothing about the message: it is retried without counting an attempt
    and is never dead-lettered for it. A query timeout (57014) is not transient here: the
    handler itself may be what is slow.
    """
    if isinstance(exc, PoolTimeout | BrokerConnectionError):
        return True
    if getattr(exc, "transient", False) is True:
        # A port outside the system (e.g. the payment provider) says it is unavailable; the
        # domain cannot import this package, so the flag is duck-typed.
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        return state is None or state.startswith("08") or state in _TRANSIENT_STATES
    return False
