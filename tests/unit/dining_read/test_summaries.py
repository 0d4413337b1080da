"""Every message of a reservation's conversation has a plain-language timeline line."""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
import uuid
from typing import Any

import pytest

from domain.dining import messages as m
from domain.messages import Message
from projections.dining.customer_timeline import HANDLED
from projections.dining.decoding import MESSAGE_CLASSES
from projections.dining.summaries import summary

_SAMPLES: dict[Any, Any] = {
    uuid.UUID: uuid.UUID(int=7),
    str: "NO_SHOW",
    int: 12_000,
    dt.date: dt.date(2026, 5, 1),
    str | None: "lovely",
}


def _sample(cls: type[Message]) -> Message:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _SAMPLES[hints[f.name]] for f in dataclasses.fields(cls)})


class TestSummaries:
    @pytest.mark.parametrize("message_type", sorted(HANDLED))
    def test_each_timeline_message_reads_as_one_line(self, message_type: str) -> None:
        line = summary(_sample(MESSAGE_CLASSES[message_type]))
        assert line
        assert "\n" not in line

    def test_amounts_are_whole_krw_with_separators(self) -> None:
        assert summary(m.DepositRefunded(uuid.uuid4(), 12_000)) == "Deposit of 12,000 KRW refunded"

    def test_a_rating_shows_its_comment_when_there_is_one(self) -> None:
        rated = m.ReservationRated(uuid.uuid4(), uuid.uuid4(), "alice", 4, None)
        assert summary(rated) == "Rated 4/5"
        assert summary(dataclasses.replace(rated, comment="good soup")) == "Rated 4/5: good soup"

    def test_the_restaurant_catalogue_is_not_on_timelines(self) -> None:
        assert m.RestaurantRegistered.TYPE not in HANDLED
        assert set(MESSAGE_CLASSES) - {m.RestaurantRegistered.TYPE} == HANDLED
        assert all(
            t.split(".")[0] in {"reservation", "deposit", "restaurant", "recommendation"}
            for t in HANDLED
        )
