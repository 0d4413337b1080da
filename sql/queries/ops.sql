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
-- Projections tail global_position; lag is how many relayed events they have not applied.
SELECT c.name,
       c.position,
       h.head,
       greatest(h.head - c.position, 0) AS lag
FROM projection.checkpoint c
CROSS JOIN (SELECT coalesce(max(global_position), 0) AS head FROM outbox.event) h
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
