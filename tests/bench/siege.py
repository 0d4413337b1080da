"""Running siege (a Debian package) against a URL file, and reading its JSON summary."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SiegeResult:
    transactions: int
    availability: float
    transaction_rate: float
    response_time: float
    failed: int
    longest: float

    @classmethod
    def parse(cls, output: str) -> SiegeResult:
        start = output.index("{")
        data = json.loads(output[start : output.rindex("}") + 1])
        return cls(
            transactions=int(data["transactions"]),
            availability=float(data["availability"]),
            transaction_rate=float(data["transaction_rate"]),
            response_time=float(data["response_time"]),
            failed=int(data["failed_transactions"]),
            longest=float(data["longest_transaction"]),
        )


def require_siege() -> str:
    path = shutil.which("siege")
    if path is None:
        raise SystemExit(
            "siege is not installed: `apt-get install -y siege` (Debian package), then run again"
        )
    return path


CONNECTION_MODES = ("close", "keep-alive")


def write_rc(path: Path, *, failures: int = 1_000_000, connection: str = "close") -> Path:
    """A siegerc with siege's own defaults (``connection = close``, HTTP/1.1, JSON output) but
    without verbose lines and with ``failures`` as the abort threshold: siege stops a run after
    1,024 failed transactions by default, and a 503 from load shedding counts as one.
    ``connection = keep-alive`` makes each simulated user keep its connection, as a load
    balancer in front of the API would."""
    if connection not in CONNECTION_MODES:
        raise ValueError(f"connection must be one of {CONNECTION_MODES}, not {connection!r}")
    path.write_text(
        "verbose = false\nquiet = true\njson_output = true\nlogging = false\n"
        f"protocol = HTTP/1.1\nconnection = {connection}\n"
        "chunked = true\ncache = false\n"
        "parser = false\nlimit = 255\nbenchmark = true\n"
        f"failures = {failures}\n",
        encoding="utf-8",
    )
    return path


def run_siege(
    urls_file: Path,
    *,
    concurrency: int,
    seconds: int,
    headers: dict[str, str],
    rc_file: Path | None = None,
) -> SiegeResult:
    """``siege -c<concurrency> -t<seconds>S -b`` over the URL file (lines: ``URL POST <json``).

    siege reads standard input when it is not a terminal, so it gets /dev/null; its summary is
    JSON on stdout in siege 4.1. ``rc_file`` (see ``write_rc``) replaces ~/.siege/siege.conf.
    """
    cmd = [require_siege(), f"-c{concurrency}", f"-t{seconds}S", "-b", "-i", "-f", str(urls_file)]
    if rc_file is not None:
        cmd += ["-R", str(rc_file)]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    for attempt in (1, 2):
        try:
            done = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=seconds + 120, check=False,
            )  # fmt: skip
            return SiegeResult.parse(done.stdout)
        except subprocess.TimeoutExpired:
            # Seen once on this machine: siege finished its requests but never exited, so its
            # summary was lost. The run is repeated rather than reported without figures.
            if attempt == 2:
                raise
            print(f"    siege did not exit {seconds + 120} s after starting; running it again")
    raise AssertionError("unreachable")
