-- name: lock
SELECT saga_id, saga_type, status, step, state, completed_steps, version, correlation_id,
       deadline_at, deadline_name, deadline_msg_id, deadline_msg_at
FROM saga.instance WHERE saga_id = %(saga_id)s FOR UPDATE

-- name: insert
-- ON CONFLICT: two start messages for one instance race; the loser reloads and reacts instead.
INSERT INTO saga.instance (saga_id, saga_type, status, step, state, completed_steps, version,
                           correlation_id)
VALUES (%(saga_id)s, %(saga_type)s, 'RUNNING', 'started', '{}', '[]', 0, %(correlation_id)s)
ON CONFLICT (saga_id) DO NOTHING

-- name: save
UPDATE saga.instance
SET status = %(status)s, step = %(step)s, state = %(state)s, completed_steps = %(completed_steps)s,
    version = version + 1, parked_reason = %(parked_reason)s, deadline_at = %(deadline_at)s,
    deadline_name = %(deadline_name)s, deadline_msg_id = %(deadline_msg_id)s,
    deadline_msg_at = %(deadline_msg_at)s, updated_at = now()
WHERE saga_id = %(saga_id)s AND version = %(version)s
RETURNING version

-- name: counts
SELECT saga_type, status, count(*) FROM saga.instance GROUP BY saga_type, status ORDER BY 1, 2

-- name: list
SELECT saga_id, saga_type, status, step, state, version, correlation_id, parked_reason,
       deadline_at, started_at, updated_at
FROM saga.instance
WHERE (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(saga_type)s::text IS NULL OR saga_type = %(saga_type)s)
ORDER BY updated_at DESC
LIMIT %(limit)s
