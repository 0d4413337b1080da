-- Circuit breakers shared by every process (haengbok.payments.breaker_store). Workers read a
-- breaker at most once a second and write it only when its state changes; the API reads it
-- to refuse new work while a dependency is down (sql/queries/shedding.sql).

-- name: register
-- A breaker is listed (CLOSED) from its first use on, so operators see it before it ever trips.
INSERT INTO ops.circuit_breaker (name) VALUES (%(name)s) ON CONFLICT (name) DO NOTHING

-- name: get
SELECT state, failures, opened_at, next_attempt_at, version
FROM ops.circuit_breaker
WHERE name = %(name)s

-- name: replace
-- Compare-and-set on version: of several processes changing the same state, one wins and the
-- others read the winner's row back. The insert covers a row deleted by hand.
INSERT INTO ops.circuit_breaker AS b
       (name, state, failures, opened_at, next_attempt_at, version, updated_at)
VALUES (%(name)s, %(state)s, %(failures)s, %(opened_at)s, %(next_attempt_at)s,
        %(expected_version)s::bigint + 1, now())
ON CONFLICT (name) DO UPDATE
   SET state = EXCLUDED.state,
       failures = EXCLUDED.failures,
       opened_at = EXCLUDED.opened_at,
       next_attempt_at = EXCLUDED.next_attempt_at,
       version = EXCLUDED.version,
       updated_at = EXCLUDED.updated_at
 WHERE b.version = %(expected_version)s::bigint
RETURNING state, failures, opened_at, next_attempt_at, version
