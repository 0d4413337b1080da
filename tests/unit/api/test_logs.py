"""Logging configuration: JSON lines that carry the ids bound for the request."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from haengbok.logs import configure_logging, reset_logging
from haengbok.settings import Settings
from outbox.logcontext import bind, bound, bound_values, unbind


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()
    root.setLevel(level)


class TestJsonLogs:
    def test_structlog_and_stdlib_lines_carry_the_bound_correlation_id(
        self, restore_logging: None
    ) -> None:
        stream = io.StringIO()
        configure_logging(Settings(log_json=True), stream=stream)

        with structlog.contextvars.bound_contextvars(correlation_id="c-1"):
            structlog.get_logger("api.test").info("hello", answer=42)
            logging.getLogger("uvicorn.test").warning("from %s", "stdlib")

        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [(line["event"], line["correlation_id"]) for line in lines] == [
            ("hello", "c-1"),
            ("from stdlib", "c-1"),
        ]
        assert lines[0]["answer"] == 42
        assert lines[0]["level"] == "info"

    def test_lines_carry_what_the_platform_bound_nested_blocks_restore_it(
        self, restore_logging: None
    ) -> None:
        stream = io.StringIO()
        configure_logging(Settings(log_json=True), stream=stream)

        with bound(correlation_id="c-1", subscriber="saga"):
            with bound(correlation_id="c-2", message_id="m-1"):
                logging.getLogger("dramatiq.test").warning("inner")
            structlog.get_logger("outbox.test").info("outer")
            structlog.get_logger("outbox.test").info("explicit", correlation_id="mine")
        structlog.get_logger("outbox.test").info("after")

        lines = {
            line.pop("event"): line for line in map(json.loads, stream.getvalue().splitlines())
        }
        assert (lines["inner"]["correlation_id"], lines["inner"]["message_id"]) == ("c-2", "m-1")
        assert lines["inner"]["subscriber"] == "saga"
        assert lines["outer"]["correlation_id"] == "c-1" and "message_id" not in lines["outer"]
        assert lines["explicit"]["correlation_id"] == "mine"  # the line's own value wins
        assert "correlation_id" not in lines["after"] and "subscriber" not in lines["after"]

    def test_bind_lasts_until_unbind(self) -> None:
        with bound(subscriber="deposit"):
            bind(correlation_id="c-1", message_id="m-1")
            assert bound_values() == {
                "subscriber": "deposit", "correlation_id": "c-1", "message_id": "m-1"
            }  # fmt: skip
            unbind("correlation_id", "message_id", "never_bound")
            assert bound_values() == {"subscriber": "deposit"}
        assert bound_values() == {}

    def test_a_line_per_http_request_is_left_out_but_failures_are_kept(
        self, restore_logging: None
    ) -> None:
        stream = io.StringIO()
        configure_logging(Settings(log_json=True), stream=stream)

        logging.getLogger("httpx").info("HTTP Request: POST http://pay/charges 200 OK")
        logging.getLogger("httpx").warning("connection lost")

        assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == [
            "connection lost"
        ]

    def test_configuring_twice_does_not_duplicate_lines(self, restore_logging: None) -> None:
        stream = io.StringIO()
        configure_logging(Settings(log_json=True), stream=stream)
        configure_logging(Settings(log_json=True), stream=stream)
        structlog.get_logger().info("once")
        assert len(stream.getvalue().splitlines()) == 1
