"""How a Dramatiq message is stored in a pgmq queue; shared by the broker and the relay.

The pgmq ``message`` column holds ``dramatiq.Message.asdict()`` as JSON. The ``headers``
column carries the FIFO group (``x-pgmq-group``) for ordered queues: pgmq's grouped reads hand
out at most one in-flight message per group, which keeps per-stream order.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from psycopg.types.json import set_json_dumps, set_json_loads

GROUP_HEADER = "x-pgmq-group"
CORRELATION_HEADER = "x-correlation-id"
MSG_ID_OPTION = "pgmq_msg_id"
READ_COUNT_OPTION = "pgmq_read_ct"
QUEUE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def check_queue_name(name: str) -> str:
    """pgmq turns a queue name into table names; keep it to lowercase identifiers."""
    if not QUEUE_NAME.match(name):
        raise ValueError(
            f"queue name {name!r} must match {QUEUE_NAME.pattern} (pgmq builds table names from it)"
        )
    return name


def notify_channel(queue_name: str) -> str:
    """The LISTEN/NOTIFY channel that wakes consumers of a queue (a hint; they also poll)."""
    return f"haengbok_q_{queue_name}"


def message_body(
    *,
    queue_name: str,
    actor_name: str,
    args: list[Any],
    message_id: str,
    message_timestamp: int,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON form of a ``dramatiq.Message`` (same keys as ``Message.asdict()``)."""
    return {
        "queue_name": queue_name,
        "actor_name": actor_name,
        "args": args,
        "kwargs": {},
        "options": options or {},
        "message_id": message_id,
        "message_timestamp": message_timestamp,
    }


def headers(group: str | None, correlation_id: str | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    if group is not None:
        out[GROUP_HEADER] = group
    if correlation_id is not None:
        out[CORRELATION_HEADER] = correlation_id
    return out


def use_fast_json() -> None:
    """Have psycopg write and read json/jsonb with msgspec (installed with Litestar) instead
    of the standard library: every message, envelope, saga state and read-model batch goes
    through it, and the standard library's encoder and decoder were 6-8 % of a worker's
    Python time in a drain profile. Same JSON either way (UUIDs, dates and datetimes are
    written as ISO strings, which the standard library would refuse). Process-wide: the API
    and the worker call it at start."""
    set_json_dumps(msgspec.json.encode)
    set_json_loads(msgspec.json.decode)
