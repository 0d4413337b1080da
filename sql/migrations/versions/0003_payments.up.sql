-- One row per circuit breaker (today: "payments", the payment provider). Worker processes
-- write it only when the breaker changes state, with a compare-and-set on version, so one
-- process opens the circuit for all and one caller in the cluster makes the half-open trial.
-- The API reads it (cached for a second) to refuse new work fast while the circuit is open.
-- next_attempt_at: when OPEN, the end of the cool-down; when HALF_OPEN, when the running trial
-- counts as lost (its process died) and another caller may try.
CREATE TABLE ops.circuit_breaker (
    name            text        PRIMARY KEY,
    state           text        NOT NULL DEFAULT 'CLOSED',
    failures        integer     NOT NULL DEFAULT 0,
    opened_at       timestamptz,
    next_attempt_at timestamptz,
    version         bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT circuit_breaker_state_check CHECK (state IN ('CLOSED', 'OPEN', 'HALF_OPEN')),
    CONSTRAINT circuit_breaker_failures_check CHECK (failures >= 0),
    CONSTRAINT circuit_breaker_version_check CHECK (version >= 0),
    CONSTRAINT circuit_breaker_tripped_check CHECK (
        state = 'CLOSED' OR (opened_at IS NOT NULL AND next_attempt_at IS NOT NULL)
    )
);
