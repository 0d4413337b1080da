"""A worker's heartbeat file: touched only while every check holds; its age read back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from haengbok.heartbeat import Heartbeat, heartbeat_age


def test_a_beat_touches_the_file_while_every_check_holds(tmp_path: Path) -> None:
    path = tmp_path / "beats" / "worker"
    healthy = [True]
    beat = Heartbeat(path, interval_seconds=1, checks=[lambda: True, lambda: healthy[0]])

    assert beat.beat() is True
    assert heartbeat_age(path) is not None
    os.utime(path, (1_000_000, 1_000_000))
    healthy[0] = False

    assert beat.beat() is False  # a thread it depends on is gone: no beat
    assert path.stat().st_mtime == 1_000_000


def test_the_age_is_none_without_a_file_and_grows_with_time(tmp_path: Path) -> None:
    path = tmp_path / "worker"
    assert heartbeat_age(path) is None
    path.touch()
    os.utime(path, (1_000, 1_000))
    assert heartbeat_age(path, now=1_030) == 30


def test_the_interval_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        Heartbeat(tmp_path / "w", interval_seconds=0)
