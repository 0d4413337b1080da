-- pgmq.read_grouped_head groups the WHOLE queue table on every read, so a backlog of N
-- messages makes each read O(N): with thousands of reservations in flight, reads dominated.
-- Here a message is handed out when no earlier message of its FIFO group is still in the
-- queue (visible, delayed or in flight) — the same rule — checked by one probe of a btree on
-- (group, msg_id) per candidate, walking the queue in msg_id order and stopping at qty.

CREATE FUNCTION outbox.pgmq_ensure_group_index(queue_name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    qtable text := pgmq.format_table_name(queue_name, 'q');
BEGIN
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS %I ON pgmq.%I '
        '((coalesce(headers ->> ''x-pgmq-group'', ''_default_fifo_group'')), msg_id)',
        qtable || '_group_idx', qtable);
END;
$$;

CREATE FUNCTION outbox.pgmq_read_group_heads(queue_name text, vt integer, qty integer)
RETURNS SETOF pgmq.message_record
LANGUAGE plpgsql AS $$
DECLARE
    qtable text := pgmq.format_table_name(queue_name, 'q');
BEGIN
    RETURN QUERY EXECUTE format($q$
        WITH heads AS (
            SELECT m.msg_id
            FROM pgmq.%1$I m
            WHERE m.vt <= clock_timestamp()
              AND NOT EXISTS (
                  SELECT 1 FROM pgmq.%1$I e
                  WHERE coalesce(e.headers ->> 'x-pgmq-group', '_default_fifo_group')
                      = coalesce(m.headers ->> 'x-pgmq-group', '_default_fifo_group')
                    AND e.msg_id < m.msg_id)
            ORDER BY m.msg_id
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        UPDATE pgmq.%1$I m
        SET vt = clock_timestamp() + make_interval(secs => $2),
            read_ct = m.read_ct + 1,
            last_read_at = clock_timestamp()
        FROM heads
        WHERE m.msg_id = heads.msg_id
        RETURNING m.msg_id, m.read_ct, m.enqueued_at, m.last_read_at, m.vt, m.message, m.headers
        $q$, qtable)
    USING qty, vt;
END;
$$;

-- Queues created before this revision get their index now.
SELECT outbox.pgmq_ensure_group_index(s.queue_name)
FROM outbox.subscription s
JOIN pgmq.meta m ON m.queue_name = s.queue_name
WHERE s.ordered;
