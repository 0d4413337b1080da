"""The side-by-side runner alternates the versions so that each is as often first as second."""

from __future__ import annotations

from tests.bench.side_by_side import order


def test_pairs_alternate_which_version_runs_first() -> None:
    assert order(1) == ["A", "B"]
    assert order(3) == ["A", "B", "B", "A", "A", "B"]
    assert order(4).count("A") == order(4).count("B") == 4
