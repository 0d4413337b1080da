-- name: lock
SELECT saga_id, saga_type, status, step, state, completed_steps, version, correlation_id,
       deadline_at, deadline_name, deadline_msg_id, deadline_msg_at, parked_reason, parked_from
FROM saga.instance WHERE saga_id = %(saga_id)s FOR UPDATE

-- name: insert
-- ON CONFLICT: two start messages for one instance race; the loser reloads and reacts instead.
INSERT INTO saga.instance (saga_id, saga_type, status, step, state, completed_steps, version,
                           correlation_id)
VALUES (%(saga_id)s, %(saga_type)s, 'RUNNING', 'started', '{}', '[]', 0, %(correlation_id)s)
ON CONFLICT (saga_id) DO NOTHING

-- name: insert_many
-- A batch's start messages' instances, created before the batch locks its instances (in
-- saga_id order, as lock_many takes them). ON CONFLICT: one already there (a redelivered
-- start, or a racing batch) is left as it is, and handled as the existing instance it is.
INSERT INTO saga.instance (saga_id, saga_type, status, step, state, completed_steps, version,
                           correlation_id)
SELECT s.saga_id, %(saga_type)s, 'RUNNING', 'started', '{}', '[]', 0, s.correlation_id
FROM unnest(%(saga_ids)s::uuid[], %(correlation_ids)s::uuid[]) AS s(saga_id, correlation_id)
ORDER BY s.saga_id
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
-- Most recently changed first; a page continues after the (updated_at, saga_id) of the last
-- row of the page before (a saga changed meanwhile moves to the front, where a client that
-- pages on does not look again).
SELECT saga_id, saga_type, status, step, state, version, correlation_id, parked_reason,
       deadline_at, started_at, updated_at
FROM saga.instance
WHERE (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(saga_type)s::text IS NULL OR saga_type = %(saga_type)s)
  AND (%(after_at)s::timestamptz IS NULL
       OR (updated_at, saga_id) < (%(after_at)s::timestamptz, %(after_id)s::uuid))
ORDER BY updated_at DESC, saga_id DESC
LIMIT %(limit)s

-- name: due_deadlines
-- Instances whose deadline has passed and that have no deadline message yet, oldest first.
-- SKIP LOCKED: an instance a handler holds is taken on a later round, and two schedulers
-- never take the same one. Served by instance_deadline_due_idx (0009); now(), not
-- clock_timestamp(): a volatile bound cannot delimit the index scan.
SELECT saga_id, saga_type, deadline_name, deadline_at, version, correlation_id
FROM saga.instance
WHERE status = 'RUNNING' AND deadline_msg_id IS NULL AND deadline_at <= now()
  AND saga_type = ANY(%(saga_types)s::text[])
ORDER BY deadline_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED

-- name: deadline_sent
-- The version stays: a fired deadline is not a step of the saga.
UPDATE saga.instance SET deadline_msg_id = %(msg_id)s, deadline_msg_at = deadline_at
WHERE saga_id = %(saga_id)s

-- name: seconds_until_next_deadline
SELECT extract(epoch FROM min(deadline_at) - clock_timestamp())::float8
FROM saga.instance
WHERE status = 'RUNNING' AND deadline_msg_id IS NULL AND deadline_at IS NOT NULL
  AND saga_type = ANY(%(saga_types)s::text[])

-- name: lock_many
-- A batch's instances, locked in saga_id order (two batches never wait on each other in a
-- cycle).
SELECT saga_id, saga_type, status, step, state, completed_steps, version, correlation_id,
       deadline_at, deadline_name, deadline_msg_id, deadline_msg_at, parked_reason, parked_from
FROM saga.instance WHERE saga_id = ANY(%(saga_ids)s::uuid[])
ORDER BY saga_id
FOR UPDATE

-- name: save_many
-- A batch's changed instances in one statement; each row names the version it was loaded at.
-- saga_ids repeats the rows' ids so the instances are found through the primary key: the
-- planner cannot tell how few rows jsonb_to_recordset yields and would scan the whole table.
UPDATE saga.instance i
SET status = r.status, step = r.step, state = r.state, completed_steps = r.completed_steps,
    version = r.version, parked_reason = r.parked_reason, deadline_at = r.deadline_at,
    deadline_name = r.deadline_name, deadline_msg_id = r.deadline_msg_id,
    deadline_msg_at = r.deadline_msg_at, updated_at = now()
FROM jsonb_to_recordset(%(rows)s::jsonb)
     AS r(saga_id uuid, status text, step text, state jsonb, completed_steps jsonb,
          version integer, loaded_version integer, parked_reason text,
          deadline_at timestamptz, deadline_name text, deadline_msg_id bigint,
          deadline_msg_at timestamptz)
WHERE i.saga_id = ANY(%(saga_ids)s::uuid[])
  AND i.saga_id = r.saga_id AND i.version = r.loaded_version
RETURNING i.saga_id

-- name: insert_started
-- An instance started in the transaction of the command that appends its start message
-- (outbox.sagas.SagaRunner.start_now): already at its first step, version 1. A new id, so no
-- ON CONFLICT: a second start of one instance is a bug, and fails the command.
INSERT INTO saga.instance (saga_id, saga_type, status, step, state, completed_steps, version,
                           correlation_id, parked_reason, deadline_at, deadline_name)
VALUES (%(saga_id)s::uuid, %(saga_type)s::text, %(saga_status)s::text, %(saga_step)s::text,
        %(saga_state)s::jsonb, %(saga_completed_steps)s::jsonb, 1,
        %(saga_correlation_id)s::uuid, %(saga_parked_reason)s::text,
        %(saga_deadline_at)s::timestamptz, %(saga_deadline_name)s::text)

-- name: park_waiting
-- The saga a dead-lettered command was sent for, when nothing else would move it now: it is
-- compensating (undos have no deadline), or running with no deadline. A running saga with a
-- deadline is left to it (the deadline settles it). The version moves, so a handler holding
-- the instance from before saves nothing over this (its save checks the version).
UPDATE saga.instance
SET status = 'PARKED', parked_from = status, parked_reason = %(reason)s,
    version = version + 1, updated_at = now()
WHERE saga_id = %(saga_id)s AND saga_type = %(saga_type)s
  AND status IN ('RUNNING', 'COMPENSATING') AND deadline_at IS NULL

-- name: resume_parked
-- The command is back in its queue: the saga goes back to what it was doing when it was parked
-- for it (sagas their definition parked have no parked_from and stay parked).
UPDATE saga.instance
SET status = parked_from, parked_from = NULL, parked_reason = NULL,
    version = version + 1, updated_at = now()
WHERE saga_id = %(saga_id)s AND saga_type = %(saga_type)s
  AND status = 'PARKED' AND parked_from IS NOT NULL

