"""CPU time used by the system's processes over a stretch of a benchmark, read from /proc.

On a shared, noisy machine a rate moves with what the neighbours do; the CPU seconds each part
of the system spent per unit of work move much less, and they say where the time goes. Linux
only. A process that exits before the end of the stretch is not counted (its time is gone
with it): the benchmarks measure while the system runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")
# First matching needle names the group; anything else is "other".
GROUPS = (
    ("haengbok.cli worker", "workers"),
    ("haengbok.cli api", "api"),
    ("multiprocessing.spawn", "api"),  # the API's extra server processes
    ("payments-sandbox", "payment sandbox"),
    ("postgres", "postgres"),
)


def _group(cmdline: str) -> str:
    for needle, name in GROUPS:
        if needle in cmdline:
            return name
    return "other"


def _snapshot() -> dict[int, tuple[str, float]]:
    """pid -> (group, CPU seconds so far) for every readable process."""
    found: dict[int, tuple[str, float]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        # Fields 14 and 15 of stat (utime, stime), counted after the ")" of the command name.
        found[int(entry.name)] = (_group(cmdline), (int(fields[11]) + int(fields[12])) / TICKS)
    return found


def _machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    values = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICKS


@dataclass
class CpuMeter:
    """``start()`` then ``stop()``: CPU seconds per group of processes in between."""

    _before: dict[int, tuple[str, float]] | None = None
    _busy_before: float = 0.0

    def start(self) -> None:
        self._before = _snapshot()
        self._busy_before = _machine_busy()

    def stop(self) -> dict[str, float]:
        if self._before is None:
            raise RuntimeError("CpuMeter.stop() before start()")
        after = _snapshot()
        by_group: dict[str, float] = {}
        for pid, (group, seconds) in after.items():
            _, earlier = self._before.get(pid, (group, 0.0))
            if pid == os.getpid():
                group = "benchmark client"
            by_group[group] = by_group.get(group, 0.0) + max(0.0, seconds - earlier)
        by_group["machine (all processes and the kernel)"] = _machine_busy() - self._busy_before
        return {k: round(v, 2) for k, v in sorted(by_group.items())}


def per_unit_ms(cpu_seconds: dict[str, float], units: int) -> dict[str, float]:
    """CPU milliseconds per unit of work (e.g. per confirmed reservation), per group."""
    if units <= 0:
        return {}
    return {k: round(v * 1000 / units, 2) for k, v in cpu_seconds.items()}
