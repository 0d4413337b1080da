"""``all_of``: several guards run as one, in order, the first refusal stopping the rest."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar.exceptions import PermissionDeniedException

from api.auth import all_of


def _recording(calls: list[str], name: str, *, refuse: bool = False, sync: bool = False) -> Any:
    def check() -> None:
        calls.append(name)
        if refuse:
            raise PermissionDeniedException(detail=f"{name} refused")

    if sync:
        return lambda connection, handler: check()

    async def guard(connection: Any, handler: Any) -> None:
        check()

    return guard


def test_runs_every_guard_in_order_sync_or_async() -> None:
    calls: list[str] = []
    guard = all_of(
        _recording(calls, "a"), _recording(calls, "b", sync=True), _recording(calls, "c")
    )
    asyncio.run(guard(object(), object()))  # type: ignore[arg-type]
    assert calls == ["a", "b", "c"]


def test_the_first_refusal_stops_the_rest() -> None:
    calls: list[str] = []
    guard = all_of(_recording(calls, "role", refuse=True), _recording(calls, "shedding"))
    with pytest.raises(PermissionDeniedException, match="role refused"):
        asyncio.run(guard(object(), object()))  # type: ignore[arg-type]
    assert calls == ["role"]


def test_needs_a_guard() -> None:
    with pytest.raises(ValueError, match="at least one guard"):
        all_of()
