"""psycopg writes and reads json through msgspec in the API and the workers."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
from psycopg.types.json import Jsonb

from outbox import wire


def test_jsonb_parameters_carry_uuids_and_datetimes_as_iso_strings(database_url: str) -> None:
    wire.use_fast_json()  # as create_app and the worker do at start
    some_id = uuid.uuid4()
    at = dt.datetime(2026, 11, 21, 9, 30, 0, 123456, tzinfo=dt.UTC)
    document = {"id": some_id, "at": at, "day": at.date(), "n": [1, 2.5, None], "text": "행복"}
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT %s::jsonb", [Jsonb(document)]).fetchone()
    assert row is not None
    assert row[0] == {
        "id": str(some_id),
        "at": "2026-11-21T09:30:00.123456Z",
        "day": "2026-11-21",
        "n": [1, 2.5, None],
        "text": "행복",
    }
