"""Appends that lose a race for a stream's next version are retried, not failed.

The saga appends its commands to ``reservation-<id>`` while the reservation context appends
its events there: both may take the same next version at once. The loser waits for the
winner's commit, then must append again on top of it.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg

from api.dining.storage import record
from domain.dining.messages import ConfirmReservation, ReservationConfirmed
from outbox.envelope import MessageContext
from outbox.log import append_async
from outbox.sagas import to_new_message
from tests.waiting import wait_until_async


async def _blocked_on_a_lock(watcher: psycopg.AsyncConnection[object], pid: int) -> bool:
    cur = await watcher.execute(
        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", [pid]
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def _race(url: str, reservation_id: uuid.UUID) -> list[tuple[int, str]]:
    stream = f"reservation-{reservation_id}"
    async with (
        await psycopg.AsyncConnection.connect(url) as saga,
        await psycopg.AsyncConnection.connect(url) as context,
        await psycopg.AsyncConnection.connect(url, autocommit=True) as watcher,
    ):
        # The saga's append stays uncommitted (an implicit transaction) until the context's
        # append has taken the same version and waits on it.
        command = to_new_message(ConfirmReservation(reservation_id))
        await append_async(saga, [command], MessageContext.new())
        async with context.transaction():
            loser = asyncio.create_task(
                record(context, MessageContext.new(), [ReservationConfirmed(reservation_id)])
            )
            try:
                await wait_until_async(
                    lambda: _blocked_on_a_lock(watcher, context.info.backend_pid)
                )
            finally:
                await saga.commit()
            appended = await loser
        assert [a.version for a in appended] == [2]
        cur = await watcher.execute(
            "SELECT version, type FROM outbox.event WHERE stream = %s ORDER BY version", [stream]
        )
        return [(int(r[0]), str(r[1])) for r in await cur.fetchall()]


class TestStreamRace:
    def test_the_losing_append_lands_on_top_of_the_winner(self, database_url: str) -> None:
        rid = uuid.uuid4()

        rows = asyncio.run(_race(database_url, rid))

        assert rows == [
            (1, "reservation.ConfirmReservation"),
            (2, "reservation.ReservationConfirmed"),
        ]
