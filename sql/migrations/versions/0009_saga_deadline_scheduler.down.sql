-- The release before 0009 fires a deadline only through a delayed message in the saga's queue:
-- every instance waiting on a deadline without one gets it here, due at its deadline, in the
-- form that release sends (a Dramatiq message for the saga's actor, its own FIFO group).
DO $$
DECLARE
    r record;
    envelope jsonb;
    sent bigint;
BEGIN
    FOR r IN
        SELECT i.saga_id, i.deadline_at, i.deadline_name, i.version, i.correlation_id,
               s.name AS actor_name, s.queue_name, gen_random_uuid() AS event_id
        FROM saga.instance i
        JOIN outbox.subscription s ON s.name = 'saga_' || i.saga_type
        WHERE i.status = 'RUNNING' AND i.deadline_at IS NOT NULL AND i.deadline_msg_id IS NULL
    LOOP
        envelope := jsonb_build_object(
            'position', 0, 'global_position', NULL, 'event_id', r.event_id, 'kind', 'event',
            'type', 'saga.DeadlineReached', 'stream', 'saga-' || r.saga_id,
            'version', r.version,
            'payload', jsonb_build_object('saga_id', r.saga_id, 'name', r.deadline_name,
                                          'version', r.version),
            'correlation_id', r.correlation_id, 'causation_id', NULL, 'actor', NULL,
            'occurred_at', to_jsonb(clock_timestamp()));
        EXECUTE format('INSERT INTO pgmq.%I (vt, message, headers) VALUES ($1, $2, $3) '
                       'RETURNING msg_id', 'q_' || r.queue_name)
            USING greatest(r.deadline_at, clock_timestamp()),
                  jsonb_build_object(
                      'queue_name', r.queue_name, 'actor_name', r.actor_name,
                      'args', jsonb_build_array(envelope), 'kwargs', '{}'::jsonb,
                      'options', '{}'::jsonb, 'message_id', gen_random_uuid(),
                      'message_timestamp', (extract(epoch FROM clock_timestamp()) * 1000)::bigint),
                  jsonb_build_object('x-pgmq-group', 'deadline-' || r.event_id,
                                     'x-correlation-id', r.correlation_id)
            INTO sent;
        UPDATE saga.instance SET deadline_msg_id = sent, deadline_msg_at = r.deadline_at
        WHERE saga_id = r.saga_id;
    END LOOP;
END
$$;

DROP INDEX saga.instance_deadline_due_idx;
