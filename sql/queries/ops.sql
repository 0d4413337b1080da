-- Operational reads: /metrics gauges and `haengbok status`. Cheap aggregates only; they run
-- on every Prometheus scrape.

-- name: scrape_guard
-- A slow scrape must not pile up behind a lock or a long scan: give up after the timeout.
SELECT set_config('statement_timeout', %(timeout_ms)s::text, true)

-- name: queue_metrics
-- queue_length counts invisible (in-flight) messages too; visible ones are waiting for a worker.
SELECT queue_name,
       queue_length,
       queue_visible_length,
       oldest_msg_age_sec,
       newest_msg_age_sec,
       total_messages
FROM pgmq.metrics_all()
ORDER BY queue_name

-- name: log_head
SELECT coalesce(max(global_position), 0) AS head FROM outbox.event

-- name: projection_lag
-- Projections tail global_position; lag is how many relayed events they have not applied,
-- lag_seconds the age of the oldest of them (0 when caught up), and stalled_seconds how long
-- a projection with events to apply has not moved its checkpoint (0 when caught up): one stuck
-- on an event it cannot apply, or whose runner is blocked, stalls; a busy one only lags.
SELECT c.name,
       c.position,
       h.head,
       greatest(h.head - c.position, 0) AS lag,
       coalesce(extract(epoch FROM clock_timestamp() - n.occurred_at), 0)::float8 AS lag_seconds,
       -- The shorter of the two: an event arriving after an idle hour is not a stall, nor is
       -- a backlog of old events while the checkpoint moves.
       CASE WHEN h.head > c.position
            THEN least(extract(epoch FROM clock_timestamp() - c.updated_at),
                       coalesce(extract(epoch FROM clock_timestamp() - n.occurred_at), 0))::float8
            ELSE 0 END AS stalled_seconds
FROM projection.checkpoint c
CROSS JOIN (SELECT coalesce(max(global_position), 0) AS head FROM outbox.event) h
LEFT JOIN outbox.event n ON n.global_position = c.position + 1
ORDER BY c.name

-- name: saga_counts
SELECT saga_type, status, count(*) AS instances
FROM saga.instance
GROUP BY saga_type, status
ORDER BY saga_type, status

-- name: parked_counts
SELECT queue_name, count(*) AS parked
FROM ops.parked_message
GROUP BY queue_name
ORDER BY queue_name

-- name: queues
-- The ops API's queue list: a queue that was dropped while messages of it are still parked is
-- listed too (with no depth), so those dead letters stay visible.
SELECT coalesce(m.queue_name, p.queue_name) AS queue_name,
       coalesce(m.queue_length, 0) AS depth,
       coalesce(m.queue_visible_length, 0) AS visible,
       m.oldest_msg_age_sec AS oldest_age_seconds,
       coalesce(p.parked, 0) AS parked,
       m.queue_name IS NOT NULL AS queue_exists
FROM pgmq.metrics_all() m
FULL JOIN (SELECT queue_name, count(*) AS parked
           FROM ops.parked_message
           GROUP BY queue_name) p ON p.queue_name = m.queue_name
ORDER BY 1

-- name: dead_letters
-- One page of the ops API's dead letters, keyset-paged on the primary key: the index range scan
-- starts at the cursor, so a deep page costs what the first one does, and rows parked, re-queued
-- or discarded between two pages never make a page skip or repeat one. The caller asks for one
-- row more than it shows, to know whether another page follows.
SELECT id, queue_name, group_key, msg_id, message, headers, read_ct, error, enqueued_at, parked_at
FROM ops.parked_message
WHERE id > %(after)s::bigint
  AND (%(queue)s::text IS NULL OR queue_name = %(queue)s::text)
ORDER BY id
LIMIT %(limit)s

-- name: saga
SELECT saga_id, saga_type, status, step, state, completed_steps, version, correlation_id,
       parked_reason, deadline_at, started_at, updated_at
FROM saga.instance
WHERE saga_id = %(saga_id)s

-- name: saga_messages
-- The saga's flow: every log entry of the conversations it took part in. The one that started
-- it has its correlation id; a later request (a cancel) starts a conversation of its own, and
-- the saga's commands carry that one on, so the correlation ids found on the saga's command
-- stream name them all. Log order is insert order (position), which is what an operator
-- follows. Bounded, so a runaway saga cannot make one response huge.
SELECT position, global_position, event_id, kind, type, stream, version, payload,
       causation_id, actor, occurred_at
FROM outbox.event
WHERE correlation_id IN (
    SELECT %(correlation_id)s::uuid
    UNION
    SELECT correlation_id FROM outbox.event WHERE stream = %(saga_stream)s
)
ORDER BY position
LIMIT %(limit)s

-- name: circuit_breakers
-- Breakers of calls to the outside world (ops.circuit_breaker); retry_in_seconds is how long
-- callers (and the API's load shedding) still wait before the next attempt, by the database clock.
SELECT name,
       state,
       failures,
       opened_at,
       next_attempt_at,
       updated_at,
       CASE WHEN state <> 'CLOSED'
            THEN greatest(extract(epoch FROM next_attempt_at - now()), 0)::float8
       END AS retry_in_seconds
FROM ops.circuit_breaker
ORDER BY name
