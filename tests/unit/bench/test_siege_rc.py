"""The siegerc the siege bench writes: siege's default connection mode unless asked otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.siege import write_rc


def _settings(path: Path) -> dict[str, str]:
    pairs = (line.split(" = ", 1) for line in path.read_text(encoding="utf-8").splitlines())
    return {key: value for key, value in pairs}


def test_a_new_connection_per_request_by_default_as_in_the_seeds_test(tmp_path: Path) -> None:
    settings = _settings(write_rc(tmp_path / "siegerc"))
    assert settings["connection"] == "close"
    assert settings["failures"] == "1000000"


def test_keep_alive_when_asked(tmp_path: Path) -> None:
    settings = _settings(write_rc(tmp_path / "siegerc", connection="keep-alive"))
    assert settings["connection"] == "keep-alive"


def test_an_unknown_mode_is_refused_and_nothing_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep-alive"):
        write_rc(tmp_path / "siegerc", connection="keepalive")
    assert not (tmp_path / "siegerc").exists()
