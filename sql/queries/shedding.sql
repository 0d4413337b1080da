-- The API's load shedding (api.shedding): read at most once a second per API process, before
-- a command is taken, so both reads must stay cheap.

-- name: breaker
-- What the API needs to decide: is the breaker refusing calls, and for how long still. The
-- wait is measured on the database clock, not the API's (next_attempt_at comes from the
-- worker that opened the circuit; hosts are NTP-synced, so skew only shifts it slightly).
SELECT state,
       greatest(extract(epoch FROM next_attempt_at - now()), 0)::float8 AS wait_seconds
FROM ops.circuit_breaker
WHERE name = %(name)s

-- name: queue_pressure
-- Depth (in flight included) and oldest message age of the named queues that exist.
SELECT m.queue_name, m.queue_length, coalesce(m.oldest_msg_age_sec, 0) AS oldest_age_seconds
FROM pgmq.meta q
CROSS JOIN LATERAL pgmq.metrics(q.queue_name) m
WHERE q.queue_name = ANY(%(queues)s::text[])
ORDER BY m.queue_name
