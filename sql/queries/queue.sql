-- Statements on ONE pgmq queue's table, for the broker's and the relay's hot paths. pgmq's own
-- functions build their statement with format() and EXECUTE it on every call, so PostgreSQL
-- parses and plans it each time (for a one-row delete, three quarters of the call). These name
-- the table directly instead: `sql.queue_query(name, queue)` puts pgmq.q_<queue> in place of
-- {queue_table} (quoted as an identifier) and psycopg prepares the result like any statement.
-- The table layout they rely on (msg_id, read_ct, enqueued_at, last_read_at, vt, message,
-- headers) is pgmq's message_record; tests/integration/broker covers every statement here.

-- name: delete
DELETE FROM {queue_table} WHERE msg_id = %(msg_id)s::bigint RETURNING msg_id

-- name: delete_many
DELETE FROM {queue_table} WHERE msg_id = ANY(%(msg_ids)s::bigint[]) RETURNING msg_id

-- name: delete_telling_followers
-- A handler's ack on an ordered queue: whether each deleted message had a later one of its FIFO
-- group waiting (one probe of the group index each), which its delete lets out. If one did,
-- the queue's consumers in every process are told at commit (the channel parameter): their
-- reads do not wait for such messages (see read_group_heads).
WITH deleted AS (
    DELETE FROM {queue_table} m WHERE m.msg_id = ANY(%(msg_ids)s::bigint[])
    RETURNING m.msg_id, EXISTS (
        SELECT 1 FROM {queue_table} e
        WHERE coalesce(e.headers ->> 'x-pgmq-group', '_default_fifo_group')
            = coalesce(m.headers ->> 'x-pgmq-group', '_default_fifo_group')
          AND e.msg_id > m.msg_id) AS lets_out
), told AS (
    SELECT pg_notify(%(channel)s::text, '') WHERE EXISTS (SELECT 1 FROM deleted WHERE lets_out)
)
SELECT d.msg_id, d.lets_out FROM deleted d CROSS JOIN (SELECT count(*) FROM told) t

-- name: send
INSERT INTO {queue_table} (vt, message, headers)
VALUES (clock_timestamp() + make_interval(secs => %(delay_ms)s::float8 / 1000),
        %(message)s::jsonb, %(headers)s::jsonb)
RETURNING msg_id

-- name: send_json_array
-- Messages and headers come as one JSON array each (dumping a jsonb[] parameter costs a
-- serialisation and an escaping pass per element). msg_ids are taken in array order.
INSERT INTO {queue_table} (vt, message, headers)
SELECT clock_timestamp() + make_interval(secs => %(delay_ms)s::float8 / 1000), m.value,
       nullif(h.value, 'null'::jsonb)
FROM jsonb_array_elements(%(messages)s::jsonb) WITH ORDINALITY AS m(value, i)
LEFT JOIN jsonb_array_elements(%(headers)s::jsonb) WITH ORDINALITY AS h(value, i) USING (i)
ORDER BY m.i
RETURNING msg_id

-- name: read
-- Any visible messages, oldest first (pgmq.read without its conditional filter). The picked
-- ids go to the UPDATE as an array, which it can only look up by primary key: joined as a
-- table, a small pick from a queue whose statistics count many rows (busy queues churn
-- through dead tuples) was planned as a hash join over a sequential scan of the whole heap.
-- Every row also says how long until the next message that is not visible now (delayed,
-- backing off or in flight) shows up; with nothing taken, one row of NULLs says it alone
-- (next_visible, below): the consumer sleeps until then, or until a NOTIFY.
WITH taken AS (
    UPDATE {queue_table} m
    SET vt = clock_timestamp() + make_interval(secs => %(vt)s::integer),
        read_ct = m.read_ct + 1,
        last_read_at = clock_timestamp()
    WHERE m.msg_id = ANY(ARRAY(
        SELECT msg_id
        FROM {queue_table}
        WHERE vt <= clock_timestamp()
        ORDER BY msg_id
        LIMIT %(qty)s
        FOR UPDATE SKIP LOCKED))
    RETURNING m.msg_id, m.read_ct, m.enqueued_at, m.message, m.headers
), due AS (
    {next_visible}
)
SELECT t.msg_id, t.read_ct, t.enqueued_at, t.message, t.headers, NULL::bigint AS blocked_by,
       d.seconds
FROM taken t CROSS JOIN due d
{nothing_taken}

-- name: read_group_heads
-- A message is handed out only when no earlier message of its FIFO group is still in the
-- queue (visible, delayed or in flight): at most one per group at a time, in order. Checked by
-- one probe of the (group, msg_id) index per candidate (outbox.pgmq_ensure_group_index; the
-- group expression must stay exactly the index's), walking the queue in msg_id order up to
-- qty; pgmq.read_grouped_head instead groups the whole table on every read.
-- blocked_by names a parked message of the same group: the message must be parked behind it,
-- or the group's order would break. The time until the next message shows up comes as in read.
-- A visible message waiting behind its group's head in flight is not counted: the head's
-- delete tells (delete_telling_followers).
WITH heads AS (
    SELECT m.msg_id
    FROM {queue_table} m
    WHERE m.vt <= clock_timestamp()
      AND NOT EXISTS (
          SELECT 1 FROM {queue_table} e
          WHERE coalesce(e.headers ->> 'x-pgmq-group', '_default_fifo_group')
              = coalesce(m.headers ->> 'x-pgmq-group', '_default_fifo_group')
            AND e.msg_id < m.msg_id)
    ORDER BY m.msg_id
    LIMIT %(qty)s
    FOR UPDATE SKIP LOCKED
), taken AS (
    -- By primary key from an array, as in read.
    UPDATE {queue_table} m
    SET vt = clock_timestamp() + make_interval(secs => %(vt)s::integer),
        read_ct = m.read_ct + 1,
        last_read_at = clock_timestamp()
    WHERE m.msg_id = ANY(ARRAY(SELECT msg_id FROM heads))
    RETURNING m.msg_id, m.read_ct, m.enqueued_at, m.message, m.headers
), due AS (
    {next_visible}
)
SELECT t.msg_id, t.read_ct, t.enqueued_at, t.message, t.headers,
       (SELECT min(p.id)
        FROM ops.parked_message p
        WHERE p.queue_name = %(queue)s::text
          AND p.group_key = t.headers ->> 'x-pgmq-group') AS blocked_by,
       d.seconds
FROM taken t CROSS JOIN due d
{nothing_taken}

-- name: nothing_taken
-- The end of the reads: with no message taken, one row of NULLs still says when the next shows.
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, d.seconds
FROM due d
WHERE NOT EXISTS (SELECT 1 FROM taken)
ORDER BY 1 NULLS LAST

-- name: next_visible
-- Part of the reads: seconds until the next message that is not visible now shows up (NULL
-- with none). pgmq indexes vt. The snapshot is the read's: the messages it takes still show
-- their old vt, which has passed. The bound is statement_timestamp(), not clock_timestamp():
-- only a stable value can start the vt index's scan, a volatile one is a filter on each
-- entry, and the scan then walked every visible message of a backlog first (1.3 ms of a
-- 3 ms saga-queue read with 2,300 waiting). A message that shows between the statement's
-- start and now gives a negative wait: the consumer reads again at once.
SELECT extract(epoch FROM min(vt) - clock_timestamp())::float8 AS seconds
FROM {queue_table}
WHERE vt > statement_timestamp()
