-- `haengbok status` (haengbok/status.py): what the terminal shows besides the ops snapshot
-- (sql/queries/ops.sql).

-- name: circuit_breakers
-- Every breaker, with its times relative to the database clock, as the API's load shedding
-- measures them (next_attempt_at comes from the worker that wrote it; hosts are NTP-synced).
-- next_attempt_in_seconds is signed, not clamped at zero: zero or less means the wait is over
-- and the next call is let through as the trial (haengbok/payments/breaker.py, _admit).
SELECT name,
       state,
       failures,
       extract(epoch FROM now() - opened_at)::float8 AS opened_seconds_ago,
       extract(epoch FROM next_attempt_at - now())::float8 AS next_attempt_in_seconds
FROM ops.circuit_breaker
ORDER BY name
