"""Run one benchmark against two versions of the code, interleaved, to compare them.

This machine's speed drifts by 10-30 % within an hour, so a figure measured for one version
and then for the other mostly measures the drift. Here the runs alternate A B B A A B ...
(each version is as often first as second in a pair), and every run's printed figures are kept,
so a difference counts only when it holds pair after pair.

The baseline is checked out as a git worktree in ``.bench-worktrees/<rev>`` (git ignores it)
that shares this checkout's ``.venv``; each run starts the benchmark module in the tree being
measured, whose code it then imports (``python -m`` puts the working directory first).

    .venv/bin/python -m tests.bench.side_by_side --baseline <rev> [--pairs 3] \\
        [--grep 'CONFIRMED:|CPU ms'] -- tests.bench.bench_dining_e2e --phases steady --rate 25
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKTREES = ROOT / ".bench-worktrees"


def order(pairs: int) -> list[str]:
    """Which version runs in each slot: A B, B A, A B, ... for ``pairs`` pairs."""
    slots: list[str] = []
    for i in range(pairs):
        slots.extend(("A", "B") if i % 2 == 0 else ("B", "A"))
    return slots


def baseline_tree(rev: str) -> Path:
    """A worktree of ``rev`` beside this checkout, made once, sharing its virtualenv."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    tree = WORKTREES / commit[:12]
    if not tree.exists():
        WORKTREES.mkdir(exist_ok=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), commit], cwd=ROOT, check=True
        )
    venv = tree / ".venv"
    if not venv.exists():
        venv.symlink_to(ROOT / ".venv")
    return tree


def run_once(tree: Path, bench: Sequence[str]) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", *bench], cwd=tree, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare against (A)")
    parser.add_argument("--pairs", type=int, default=3, help="pairs of runs (A B, B A, ...)")
    parser.add_argument(
        "--grep", default=".", help="print only the output lines matching this regex"
    )
    parser.add_argument("bench", nargs=argparse.REMAINDER, help="-- module [its arguments]")
    args = parser.parse_args(argv)
    bench = [a for a in args.bench if a != "--"] if args.bench else []
    if not bench:
        parser.error("name the benchmark module after --")
    trees = {"A": baseline_tree(args.baseline), "B": ROOT}
    pattern = re.compile(args.grep)
    print(
        f"A = {args.baseline} ({trees['A']}), B = this checkout; order {' '.join(order(args.pairs))}"
    )
    failed = 0
    for slot, version in enumerate(order(args.pairs), start=1):
        code, output = run_once(trees[version], bench)
        print(f"== run {slot}: {version}" + ("" if code == 0 else f" (exit {code})"), flush=True)
        for line in output.splitlines():
            if pattern.search(line):
                print(f"  {line.strip()}", flush=True)
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
