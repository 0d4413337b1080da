"""Parsing ``Prefer: wait=N`` (RFC 7240)."""

from __future__ import annotations

import pytest

from api.commands import prefer_wait


class TestPreferWait:
    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("wait=2", 2.0),
            ("respond-async, wait=4", 4.0),
            ("wait=0.5; foo=bar", 0.5),
            ('WAIT="3"', 3.0),
            ("wait=60", 5.0),  # capped
        ],
    )
    def test_reads_the_seconds_capped(self, header: str, expected: float) -> None:
        assert prefer_wait(header, cap_seconds=5.0) == expected

    @pytest.mark.parametrize(
        "header", [None, "", "respond-async", "wait=0", "wait=soon", "nowait=3", "wait=-1"]
    )
    def test_ignores_what_it_cannot_honour(self, header: str | None) -> None:
        assert prefer_wait(header, cap_seconds=5.0) is None
