"""Which of several processes that run the same job is the active one; the others stand by.

Every worker process runs the relay and the projection runner, so that another carries on
when one dies. When they all raced for every batch, each notification woke all of them and each
spent a transaction trying, most finding the work taken: at 25 reservations/s that was a third
of all statements (pg_stat_statements in the Dining steady bench), and every extra LISTENing
session makes each NOTIFY dearer (PostgreSQL signals all of them). Now the process whose
dedicated connection holds a session advisory lock leads: it LISTENs and works at once. A
standby neither listens nor races; it looks again every poll, and still runs one batch then,
which covers a leader that is alive but stuck (the per-batch transaction locks keep two
batches from overlapping, so this only costs a transaction per poll). The lock lives as long as
the leader's session: when its process dies or its connection drops, a standby takes over at
its next poll.
"""

from __future__ import annotations

from typing import Any

import psycopg

from sql import query

#: Session-level lock keys, apart from the per-transaction keys that guard each batch (a
#: session holding a key would block its own process's transactions taking the same one).
RELAY = 7424651003
PROJECTIONS = 7424651004


class Standby:
    """Tracks whether a job's dedicated connection holds its leadership lock."""

    def __init__(self, key: int) -> None:
        self.key = key
        self._holder: psycopg.Connection[Any] | None = None

    @property
    def leading(self) -> bool:
        holder = self._holder
        return holder is not None and not holder.closed

    def try_lead(self, conn: psycopg.Connection[Any]) -> bool:
        """Take the lead on ``conn`` (autocommit, kept open by the caller) if nobody holds it;
        True while this connection holds it. Cheap to call again: once held, no round trip."""
        if self._holder is conn and not conn.closed:
            return True
        row = conn.execute(query("outbox.try_lead"), {"key": self.key}).fetchone()
        self._holder = conn if row is not None and row[0] else None
        return self._holder is not None
