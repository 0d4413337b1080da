CREATE FUNCTION outbox.pgmq_next_visible_at(queue_name text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    result timestamptz;
BEGIN
    EXECUTE format('SELECT min(vt) FROM pgmq.%I WHERE vt > now()',
                   pgmq.format_table_name(queue_name, 'q'))
    INTO result;
    RETURN result;
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
