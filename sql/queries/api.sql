-- The HTTP API's own tables: idempotency records (ops.idempotency) and probes.

-- name: ping
SELECT 1

-- name: idempotency_claim
-- Inserted first in the command's transaction. A concurrent request with the same key blocks
-- here on the uncommitted row until the first transaction ends: after a commit it inserts
-- nothing and replays the stored response; after a rollback it claims the key itself.
INSERT INTO ops.idempotency (scope, key, request_hash)
VALUES (%(scope)s, %(key)s, %(request_hash)s)
ON CONFLICT (scope, key) DO NOTHING
RETURNING true AS claimed

-- name: idempotency_get
SELECT request_hash, status_code, response_body, response_headers
FROM ops.idempotency
WHERE scope = %(scope)s AND key = %(key)s

-- name: idempotency_answered
-- Whether a keyed command was carried out and its response stored (load shedding lets its
-- retries through to be replayed).
SELECT 1 FROM ops.idempotency
WHERE scope = %(scope)s AND key = %(key)s AND status_code IS NOT NULL

-- name: idempotency_store
UPDATE ops.idempotency
SET status_code = %(status_code)s,
    response_body = %(response_body)s,
    response_headers = %(response_headers)s
WHERE scope = %(scope)s AND key = %(key)s

-- name: idempotency_purge
-- Batched so a large backlog never holds one long transaction; uses idempotency_created_idx.
DELETE FROM ops.idempotency
WHERE ctid IN (
    SELECT ctid FROM ops.idempotency
    WHERE created_at < now() - %(older_than)s::interval
    ORDER BY created_at
    LIMIT %(batch_size)s
)
