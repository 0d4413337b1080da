-- name: append_one
-- Versions continue the stream's head; a concurrent writer of the same stream hits
-- event_stream_version_key and gets a ConcurrencyConflict.
INSERT INTO outbox.event (event_id, kind, type, stream, version, payload,
                          correlation_id, causation_id, actor)
VALUES (%(event_id)s::uuid, %(kind)s::text, %(type)s::text, %(stream)s::text,
        coalesce((SELECT max(e.version) FROM outbox.event e WHERE e.stream = %(stream)s::text), 0)
          + 1,
        %(payload)s::jsonb, %(correlation_id)s::uuid, %(causation_id)s::uuid, %(actor)s::text)
RETURNING position, event_id, stream, version

-- name: notify_relay
SELECT pg_notify('haengbok_outbox', '')

-- name: try_lead
-- A session-level lock: held until released or the session ends (outbox/standby.py).
SELECT pg_try_advisory_lock(%(key)s::bigint)

-- name: relay_session
-- The relay transaction's first statement, before the relay statement. It takes the relay
-- leadership: only one relay transaction at a time assigns global positions (see
-- 0001_platform.up.sql). Taken here and not in the relay statement, because a statement sees
-- what committed before it began: a relay that got the lock while its claim was already
-- running would not see the rows the previous leader relayed meanwhile, and would relay them
-- again. The outcome stays in a transaction-local setting for the relay statement's guard
-- (relay_guard). Bitmap scans go off for the transaction, so the relay statement is planned
-- without them: the claim must walk event_unrelayed_idx with a plain index scan, which marks
-- the entries of rows relayed long enough ago as dead so later scans skip them; a bitmap scan
-- never does, and each claim re-read every row relayed since the last vacuum.
SELECT set_config('haengbok.relay_leader', pg_try_advisory_xact_lock(7424651002)::text, true),
       set_config('enable_bitmapscan', 'off', true)

-- name: relay_guard
-- The relay statement's first step: it claims only while this transaction leads
-- (relay_session) and the routes are those it was built for.
SELECT coalesce(current_setting('haengbok.relay_leader', true), '') = 'true' AS leader,
       ({routes_digest}) = %(routes_digest)s AS routes_ok

-- name: relay_lock
-- The same leadership, alone: for tools and tests that assign global positions without
-- relaying (projections' tests).
SELECT pg_try_advisory_xact_lock(7424651002)

-- name: routes_digest
-- What the relay's statement was built for: changes whenever a subscription does.
SELECT md5(coalesce(string_agg(
           s.name || '|' || s.queue_name || '|' || array_to_string(s.message_types, ',')
           || '|' || s.ordered::text, ';' ORDER BY s.name), ''))
FROM outbox.subscription s

-- name: claim_batch
-- The LIMIT is the limit parameter, or in the relay statement that limit only while its guard
-- holds (outbox.relay.claim_query). global_position continues from the current maximum in
-- position order; the relay's sends to pgmq commit in this same transaction.
WITH batch AS (
    SELECT position, row_number() OVER (ORDER BY position) AS rn
    FROM (SELECT position FROM outbox.event
          WHERE global_position IS NULL
          ORDER BY position
          LIMIT {limit}) b
), head AS (
    SELECT coalesce(max(global_position), 0) AS g FROM outbox.event
)
UPDATE outbox.event e
SET global_position = head.g + batch.rn,
    relayed_at = clock_timestamp()
FROM batch, head
WHERE e.position = batch.position
RETURNING e.position, e.global_position, e.event_id, e.kind, e.type, e.stream, e.version,
          e.payload, e.correlation_id, e.causation_id, e.actor, e.occurred_at

-- name: subscriptions
-- With the digest of them all (routes_digest), which the relay statement checks.
SELECT name, queue_name, message_types, ordered, ({routes_digest}) FROM outbox.subscription

-- name: upsert_subscription
INSERT INTO outbox.subscription (name, queue_name, message_types, ordered)
VALUES (%(name)s, %(queue_name)s, %(message_types)s, %(ordered)s)
ON CONFLICT (name) DO UPDATE
SET queue_name = excluded.queue_name,
    message_types = excluded.message_types,
    ordered = excluded.ordered,
    updated_at = now()
WHERE (subscription.queue_name, subscription.message_types, subscription.ordered)
      IS DISTINCT FROM (excluded.queue_name, excluded.message_types, excluded.ordered)

-- name: relay_lag
SELECT count(*) AS pending,
       coalesce(extract(epoch FROM clock_timestamp() - min(occurred_at)), 0)::float8 AS oldest_seconds
FROM outbox.event WHERE global_position IS NULL

-- name: stream
SELECT position, global_position, event_id, kind, type, stream, version, payload,
       correlation_id, causation_id, actor, occurred_at
FROM outbox.event WHERE stream = %(stream)s ORDER BY version

-- name: notify
SELECT pg_notify(channel, '') FROM unnest(%(channels)s::text[]) AS channel

-- name: ensure_queue
-- Only a missing queue: pgmq.create on an existing one still runs CREATE INDEX IF NOT EXISTS,
-- which takes a SHARE lock on the queue's table, so a worker starting beside busy ones would
-- wait for every open transaction that writes the queue, block the writers behind it, and
-- could deadlock with a relay inserting into several queues.
SELECT pgmq.create(%(queue)s::text)
WHERE NOT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = %(queue)s::text)

-- name: append_each
-- Several messages, one row per element of a JSON array, in its order; each row carries its own
-- context (a consumer batch's handlers each have theirs). Versions continue each stream's head
-- (a concurrent writer of a stream hits event_stream_version_key: ConcurrencyConflict); ORDER
-- BY ord keeps identity values in input order so a stream's versions and positions rise
-- together.
WITH input AS (
    SELECT *
    FROM ROWS FROM (jsonb_to_recordset(%(rows)s::jsonb)
                    AS (event_id uuid, kind text, type text, stream text, payload jsonb,
                        correlation_id uuid, causation_id uuid, actor text))
         WITH ORDINALITY AS i(event_id, kind, type, stream, payload, correlation_id,
                              causation_id, actor, ord)
), numbered AS (
    SELECT i.*,
           coalesce((SELECT max(e.version) FROM outbox.event e WHERE e.stream = i.stream), 0)
             + row_number() OVER (PARTITION BY i.stream ORDER BY i.ord) AS version
    FROM input i
)
INSERT INTO outbox.event (event_id, kind, type, stream, version, payload,
                          correlation_id, causation_id, actor)
SELECT event_id, kind, type, stream, version, payload, correlation_id, causation_id, actor
FROM numbered
ORDER BY ord
RETURNING position, event_id, stream, version
