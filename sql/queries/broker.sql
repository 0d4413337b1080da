-- The pgmq broker for Dramatiq (outbox/broker.py). Queue names are always parameters of pgmq
-- functions; pgmq quotes them into its own table names.

-- name: create_queue
-- Idempotent; pgmq serialises concurrent creators with an advisory lock.
SELECT pgmq.create(%(queue)s::text)

-- name: create_group_index
-- Ordered queues read group heads through this index (see 0005_fifo_reads.up.sql). Only when
-- it is missing: CREATE INDEX IF NOT EXISTS takes its SHARE lock before it checks the name
-- (see outbox.ensure_queue).
SELECT outbox.pgmq_ensure_group_index(%(queue)s::text)
WHERE to_regclass(format('pgmq.%%I', pgmq.format_table_name(%(queue)s::text, 'q') || '_group_idx'))
      IS NULL

-- name: notify
-- A wake-up hint only; consumers also poll. Sent in the sender's transaction, so it arrives
-- after the message is committed.
SELECT pg_notify(%(channel)s, '')

-- name: listen
-- Composed with psycopg.sql.Identifier: LISTEN takes no parameters.
LISTEN {channel}

-- name: ping
SELECT 1

-- name: set_visible_in
SELECT msg_id
FROM pgmq.set_vt(%(queue)s::text, %(msg_ids)s::bigint[],
                 clock_timestamp() + make_interval(secs => %(delay_ms)s::float8 / 1000))

-- name: purge
SELECT pgmq.purge_queue(%(queue)s::text)

-- name: queue_length
-- In-flight, delayed and backing-off messages count: they are still rows of the queue.
SELECT queue_length FROM pgmq.metrics(%(queue)s::text)

-- name: lock_group
-- Parking and re-queueing of one FIFO group take turns, so a message is never parked behind a
-- message that is being re-queued at that very moment.
SELECT pg_advisory_xact_lock(hashtextextended('parked:' || %(queue)s::text || ':' || %(group_key)s::text, 0))

-- name: park
-- The message leaves its queue and lands in ops.parked_message in one statement; nothing is
-- parked when the delete finds no row (another delivery already finished the message).
WITH gone AS (
    SELECT pgmq.delete(%(queue)s::text, %(msg_id)s::bigint) AS deleted
)
INSERT INTO ops.parked_message (queue_name, group_key, msg_id, message, headers, read_ct,
                                error, enqueued_at)
SELECT %(queue)s::text, %(group_key)s::text, %(msg_id)s::bigint, %(message)s::jsonb,
       %(headers)s::jsonb, %(read_ct)s::integer, %(error)s::text, %(enqueued_at)s::timestamptz
FROM gone
WHERE gone.deleted
RETURNING id

-- name: park_behind
-- Only while the group still has a parked message (it may have been re-queued meanwhile).
WITH blocker AS (
    SELECT min(id) AS id
    FROM ops.parked_message
    WHERE queue_name = %(queue)s::text AND group_key = %(group_key)s::text
), gone AS (
    SELECT pgmq.delete(%(queue)s::text, %(msg_id)s::bigint) AS deleted
    FROM blocker
    WHERE blocker.id IS NOT NULL
)
INSERT INTO ops.parked_message (queue_name, group_key, msg_id, message, headers, read_ct,
                                error, enqueued_at)
SELECT %(queue)s::text, %(group_key)s::text, %(msg_id)s::bigint, %(message)s::jsonb,
       %(headers)s::jsonb, %(read_ct)s::integer,
       'waiting behind parked message #' || blocker.id, %(enqueued_at)s::timestamptz
FROM gone, blocker
WHERE gone.deleted
RETURNING id

-- name: list_parked
SELECT id, queue_name, group_key, msg_id, message, headers, read_ct, error, enqueued_at, parked_at
FROM ops.parked_message
WHERE %(queue)s::text IS NULL OR queue_name = %(queue)s::text
ORDER BY queue_name, group_key NULLS FIRST, msg_id

-- name: parked_target
SELECT queue_name, group_key, msg_id FROM ops.parked_message WHERE id = %(id)s::bigint

-- name: requeue_parked
-- The message and the later messages of its group go back under their original msg_id, so they
-- sit ahead of anything of the group that is still queued: per-group order survives.
WITH moved AS (
    DELETE FROM ops.parked_message p
    USING ops.parked_message t
    WHERE t.id = %(id)s::bigint
      AND p.queue_name = t.queue_name
      AND (p.id = t.id OR (t.group_key IS NOT NULL AND p.group_key = t.group_key
                           AND p.msg_id > t.msg_id))
    RETURNING p.queue_name, p.msg_id, p.enqueued_at, p.message, p.headers
)
SELECT outbox.pgmq_restore(queue_name, msg_id, enqueued_at, message, headers) AS msg_id
FROM moved
ORDER BY msg_id

-- name: discard_parked
DELETE FROM ops.parked_message WHERE id = %(id)s::bigint RETURNING id

-- name: retry_uncounted
SELECT outbox.pgmq_retry_uncounted(
    %(queue)s::text, %(msg_ids)s::bigint[],
    clock_timestamp() + make_interval(secs => %(delay_ms)s::float8 / 1000))
