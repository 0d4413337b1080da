"""Statements one benchmark database ran over a stretch, from pg_stat_statements.

A count of statements per unit of work barely moves with what the machine's neighbours do,
so on a noisy machine it tells two versions of the code apart where a rate or CPU time cannot.
It needs the extension loaded by the server (``shared_preload_libraries``) and created in the
admin database (``postgres``), where its view covers every database; without it the meter
reads nothing and says so once. BEGIN and COMMIT are statements too, counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from haengbok.dburl import database_of, with_database

_TOTALS = """
SELECT coalesce(sum(s.calls), 0)::bigint,
       coalesce(sum(s.total_exec_time), 0)::float8,
       coalesce(sum(s.calls) FILTER (WHERE s.query ~* '^\\s*(begin|commit|rollback)'), 0)::bigint
FROM pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = %s)
"""


@dataclass(frozen=True)
class Statements:
    calls: int
    exec_ms: float
    transaction_controls: int

    def per(self, units: int) -> tuple[float, float, float] | None:
        """Statements (BEGIN/COMMIT apart), ms of execution, and BEGIN/COMMITs per unit."""
        if units <= 0:
            return None
        other = self.calls - self.transaction_controls
        return other / units, self.exec_ms / units, self.transaction_controls / units


class StatementMeter:
    """``start`` then ``stop`` around a stretch; ``stop`` gives what the database ran."""

    def __init__(self, url: str) -> None:
        self._admin = with_database(url, "postgres")
        self._name = database_of(url)
        self._start: Statements | None = None

    def _read(self) -> Statements | None:
        try:
            with psycopg.connect(self._admin, autocommit=True) as conn:
                row = conn.execute(_TOTALS, [self._name]).fetchone()
        except psycopg.Error:
            return None
        assert row is not None
        return Statements(int(row[0]), float(row[1]), int(row[2]))

    def start(self) -> None:
        self._start = self._read()
        if self._start is None:
            print("  (no pg_stat_statements in the admin database: statements not counted)")

    def stop(self) -> Statements | None:
        end = self._read()
        if self._start is None or end is None:
            return None
        return Statements(
            end.calls - self._start.calls,
            end.exec_ms - self._start.exec_ms,
            end.transaction_controls - self._start.transaction_controls,
        )


def describe(spent: Statements | None, units: int, what: str) -> str | None:
    """One line for the bench's output, or None when nothing was counted."""
    if spent is None:
        return None
    per = spent.per(units)
    if per is None:
        return None
    statements, exec_ms, controls = per
    return (
        f"  statements per {what} (pg_stat_statements): {statements:.1f}, plus "
        f"{controls:.1f} BEGIN/COMMIT; {exec_ms:.2f} ms executing"
    )
