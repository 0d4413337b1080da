"""Relay throughput: events/s relayed from a pre-filled log, as a ratio to raw
``pgmq.send_batch`` of the same messages into the same queues, measured in the same run.

    .venv/bin/python -m tests.bench.bench_relay [--events 100000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import time

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from outbox import wire
from outbox.envelope import Envelope
from outbox.relay import Route, load_routes, message_id, relay_batch, sync_routes
from tests.bench.common import drop_database, fresh_database, write_result

ROUTES = [
    Route("bench_ordered", "bench_ordered", frozenset({"bench.Happened"}), True),
    Route("bench_unordered", "bench_unordered", frozenset({"bench.Happened"}), False),
]
BATCH = 500


def prefill(conn: psycopg.Connection[tuple[object, ...]], events: int, streams: int) -> None:
    conn.execute(
        """
        INSERT INTO outbox.event (event_id, type, stream, version, payload, correlation_id)
        SELECT gen_random_uuid(), 'bench.Happened', 'thing-' || (i %% %(streams)s),
               1 + i / %(streams)s, jsonb_build_object('i', i, 'note', repeat('x', 80)),
               gen_random_uuid()
        FROM generate_series(0, %(n)s - 1) AS i
        """,
        {"n": events, "streams": streams},
    )
    conn.commit()
    vacuum(conn)


def vacuum(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")
    conn.autocommit = False


def reset(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute("UPDATE outbox.event SET global_position = NULL, relayed_at = NULL")
    for route in ROUTES:
        conn.execute("SELECT pgmq.purge_queue(%s)", [route.queue_name])
    conn.commit()
    vacuum(conn)


def time_relay(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[int, float]:
    done, start = 0, time.perf_counter()
    while True:
        with conn.transaction():
            n = relay_batch(conn, BATCH)
        if not n:
            return done, time.perf_counter() - start
        done += n


def build_sends(
    envelopes: list[Envelope], routes: list[Route]
) -> dict[str, tuple[list[dict[str, object]], list[dict[str, str]]]]:
    """The relay's messages and headers per queue, built in Python for the raw baseline."""
    sends: dict[str, tuple[list[dict[str, object]], list[dict[str, str]]]] = {}
    for env in envelopes:
        for route in routes:
            if env.type not in route.message_types:
                continue
            body = wire.message_body(
                queue_name=route.queue_name, actor_name=route.name, args=[env.to_json()],
                message_id=message_id(env.event_id, route.name),
                message_timestamp=int(env.occurred_at.timestamp() * 1000),
            )  # fmt: skip
            head = wire.headers(env.stream if route.ordered else None, str(env.correlation_id))
            msgs, heads = sends.setdefault(route.queue_name, ([], []))
            msgs.append(body)
            heads.append(head)
    return sends


RAW_SEND_BATCH = "SELECT pgmq.send_batch(%s::text, %s::jsonb[], %s::jsonb[])"


def time_raw(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[int, float]:
    """The same messages, pre-built, sent with pgmq.send_batch in batches of the same size."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT position, global_position, event_id, kind, type, stream, version, payload,"
            " correlation_id, causation_id, actor, occurred_at FROM outbox.event ORDER BY position"
        ).fetchall()
    envelopes = [Envelope.from_row(r) for r in rows]
    routes = load_routes(conn)
    batches = [
        {
            queue: ([Jsonb(m) for m in msgs], [Jsonb(h) for h in heads])
            for queue, (msgs, heads) in build_sends(envelopes[i : i + BATCH], routes).items()
        }
        for i in range(0, len(envelopes), BATCH)
    ]
    start = time.perf_counter()
    for sends in batches:
        with conn.transaction():
            for queue, (msgs, heads) in sends.items():
                conn.execute(RAW_SEND_BATCH, [queue, msgs, heads])
    return len(envelopes), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    url, _server = fresh_database("bench_relay")
    try:
        with psycopg.connect(url) as conn:
            sync_routes(conn, ROUTES)
            conn.commit()
            print(f"pre-filling {args.events} events over {args.streams} streams ...", flush=True)
            prefill(conn, args.events, args.streams)
            rounds = []
            for r in range(args.rounds):
                reset(conn)
                raw_n, raw_s = time_raw(conn)
                reset(conn)
                relay_n, relay_s = time_relay(conn)
                assert relay_n == raw_n == args.events
                raw_rate, relay_rate = raw_n / raw_s, relay_n / relay_s
                rounds.append({"raw_events_per_s": raw_rate, "relay_events_per_s": relay_rate,
                               "ratio": relay_rate / raw_rate})  # fmt: skip
                print(f"round {r + 1}: raw send_batch {raw_rate:,.0f} ev/s, relay {relay_rate:,.0f} "
                      f"ev/s, ratio {relay_rate / raw_rate:.2f} (goal >= 0.30)", flush=True)  # fmt: skip
        best = max(rounds, key=lambda x: x["ratio"])
        path = write_result("relay", {"events": args.events, "queues": len(ROUTES), "batch": BATCH,
                                      "rounds": rounds, "best": best})  # fmt: skip
        print(f"written {path}")
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
