-- name: try_lock
-- One runner per projection across processes. Transaction-scoped, so a killed runner's lock
-- goes with its connection. The two-key form is a lock space apart from the relay's one-key
-- lock; 7424653 marks "projection", hashtext the projection's name.
SELECT pg_try_advisory_xact_lock(7424653, hashtext(%(name)s))

-- name: lock
-- The rebuild's swap waits for the running batch (if any) instead of skipping.
SELECT pg_advisory_xact_lock(7424653, hashtext(%(name)s))

-- name: set_lock_timeout
-- For this transaction only: a swap waiting on a long reader must not queue every other reader
-- behind its ACCESS EXCLUSIVE request for long.
SELECT set_config('lock_timeout', %(timeout)s, true)

-- name: checkpoint
SELECT position FROM projection.checkpoint WHERE name = %(name)s

-- name: register
INSERT INTO projection.checkpoint (name) VALUES (%(name)s) ON CONFLICT (name) DO NOTHING

-- name: save_checkpoint
INSERT INTO projection.checkpoint (name, position, updated_at)
VALUES (%(name)s, %(position)s, now())
ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at

-- name: head
-- Global positions are assigned gap-free by one relay transaction at a time, and each becomes
-- visible before the next relay transaction starts: every position <= this head is committed,
-- so a later statement reading up to it cannot miss a row that commits late.
SELECT coalesce(max(global_position), 0) FROM outbox.event

-- name: batch
-- Bounded above by a head read earlier in the transaction (see head) and by a scan window, so
-- a projection that handles rare types still commits short transactions. The columns are the
-- fields of outbox.envelope.Envelope, in their order (projections.runtime.read_batch).
SELECT position, global_position, event_id, kind, type, stream, version, payload,
       correlation_id, causation_id, actor, occurred_at
FROM outbox.event
WHERE global_position > %(after)s AND global_position <= %(upto)s
  AND type = ANY(%(types)s::text[])
ORDER BY global_position
LIMIT %(limit)s

-- name: notify_progress
-- Inside the batch's transaction: PostgreSQL delivers it only if and when that commits.
SELECT pg_notify('haengbok_projection_' || %(name)s, %(position)s::text)

-- name: wakeup
-- For the relay, after it assigned global positions: runners LISTEN here.
SELECT pg_notify('haengbok_projection_wakeup', '')

-- name: lag
-- lag_seconds is the age of the oldest event the projection has not passed yet: how stale its
-- read model is. lag_events counts skipped (unhandled) types too; positions are gap-free.
SELECT c.name, c.position AS checkpoint, h.head,
       greatest(h.head - c.position, 0) AS lag_events,
       coalesce(extract(epoch FROM clock_timestamp() - n.occurred_at), 0)::float8 AS lag_seconds
FROM projection.checkpoint c
CROSS JOIN (SELECT coalesce(max(global_position), 0) AS head FROM outbox.event) h
LEFT JOIN outbox.event n ON n.global_position = c.position + 1
ORDER BY c.name

-- name: reached
-- Read-your-writes: the command's event (by its insert-time position) has been relayed and the
-- projection has passed it. No row means no such event (or not yet visible).
SELECT e.global_position, c.position AS checkpoint
FROM outbox.event e
LEFT JOIN projection.checkpoint c ON c.name = %(name)s
WHERE e.position = %(position)s

-- name: table_exists
SELECT to_regclass(format('%%I.%%I', %(schema)s::text, %(name)s::text)) IS NOT NULL

-- name: table_grants
-- Privileges granted on a table to roles other than its owner, to copy onto its rebuilt twin.
SELECT coalesce(r.rolname, 'PUBLIC') AS grantee, a.privilege_type, a.is_grantable
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL aclexplode(c.relacl) a
LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE n.nspname = %(schema)s AND c.relname = %(name)s AND a.grantee <> c.relowner
ORDER BY 1, 2

-- name: table_constraint_names
SELECT con.conname
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = %(name)s
ORDER BY 1

-- name: table_plain_index_names
-- Indexes that back no constraint of the table (those are renamed with their constraint).
SELECT ic.relname
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = %(name)s
  AND NOT EXISTS (SELECT 1 FROM pg_constraint con
                  WHERE con.conrelid = i.indrelid AND con.conindid = i.indexrelid)
ORDER BY 1

-- name: lock_round
-- A runner's round: the projections of `names` no other runner holds now (the same lock as
-- try_lock, taken for each name in the list only). Their checkpoints are read by the next
-- statement, never by this one: its snapshot is older than the lock it takes, and may miss the
-- checkpoint the runner that just let go of it committed.
SELECT n.name
FROM unnest(%(names)s::text[]) AS n(name)
WHERE pg_try_advisory_xact_lock(7424653, hashtext(n.name))

-- name: round_checkpoints
-- The held projections' checkpoints (0 before the first one is saved) and the head (see head),
-- read after their locks were taken and before the round's batch.
SELECT n.name, coalesce(c.position, 0),
       (SELECT coalesce(max(global_position), 0) FROM outbox.event) AS head
FROM unnest(%(names)s::text[]) AS n(name)
LEFT JOIN projection.checkpoint c ON c.name = n.name

-- name: save_checkpoints
INSERT INTO projection.checkpoint (name, position, updated_at)
SELECT t.name, t.position, now()
FROM unnest(%(names)s::text[], %(positions)s::bigint[]) AS t(name, position)
ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at

-- name: notify_progress_many
SELECT pg_notify('haengbok_projection_' || t.name, t.position::text)
FROM unnest(%(names)s::text[], %(positions)s::bigint[]) AS t(name, position)
