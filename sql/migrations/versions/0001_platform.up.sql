-- One schema per bounded context; a context's code writes only its own schema.
CREATE SCHEMA reservation;
CREATE SCHEMA deposit;
CREATE SCHEMA restaurant;
CREATE SCHEMA recommendation;
CREATE SCHEMA customer_center;
CREATE SCHEMA movie;
CREATE SCHEMA booking;
CREATE SCHEMA payment;
CREATE SCHEMA seat;
CREATE SCHEMA ticket;
CREATE SCHEMA my_page;
CREATE SCHEMA outbox;
CREATE SCHEMA saga;
CREATE SCHEMA projection;
CREATE SCHEMA reporting;
CREATE SCHEMA ops;

-- The event log, which is also the outbox. A command's transaction inserts rows with
-- global_position NULL. The relay leader (one at a time, advisory lock) assigns a gap-free
-- global_position in `position` order and sends to pgmq in the same transaction.
-- Why this is gap-safe and keeps per-stream order: identity values are taken at INSERT and
-- may commit out of order, so nobody ever reads "position > last seen". The relay instead
-- takes every committed row still lacking a global_position. Within one stream, version N+1
-- can only be written after version N committed (unique (stream, version)), so a stream's rows
-- are committed, and therefore relayed, in position order. global_position is assigned by a
-- single transaction at a time, so readers tailing it (projections) never see a hole fill later.
CREATE TABLE outbox.event (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    global_position bigint,
    event_id        uuid        NOT NULL,
    kind            text        NOT NULL DEFAULT 'event',
    type            text        NOT NULL,
    stream          text        NOT NULL,
    version         integer     NOT NULL,
    payload         jsonb       NOT NULL,
    correlation_id  uuid        NOT NULL,
    causation_id    uuid,
    actor           text,
    occurred_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    relayed_at      timestamptz,
    CONSTRAINT event_event_id_key UNIQUE (event_id),
    CONSTRAINT event_stream_version_key UNIQUE (stream, version),
    CONSTRAINT event_global_position_key UNIQUE (global_position),
    CONSTRAINT event_kind_check CHECK (kind IN ('event', 'command')),
    CONSTRAINT event_version_check CHECK (version > 0),
    CONSTRAINT event_type_check CHECK (type ~ '^[a-z_]+\.[A-Za-z][A-Za-z0-9]*$')
);
-- The relay's work list: small, because relayed rows leave it.
CREATE INDEX event_unrelayed_idx ON outbox.event (position) WHERE global_position IS NULL;
CREATE INDEX event_correlation_idx ON outbox.event (correlation_id, position);

-- Who receives which message types. Synced from code at worker start; the relay routes from here.
CREATE TABLE outbox.subscription (
    name          text        PRIMARY KEY,
    queue_name    text        NOT NULL,
    message_types text[]      NOT NULL,
    ordered       boolean     NOT NULL DEFAULT true,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscription_types_not_empty CHECK (cardinality(message_types) > 0)
);

-- Process managers (sagas): one row per instance, optimistic version.
CREATE TABLE saga.instance (
    saga_id         uuid        PRIMARY KEY,
    saga_type       text        NOT NULL,
    status          text        NOT NULL,
    step            text        NOT NULL,
    state           jsonb       NOT NULL DEFAULT '{}',
    completed_steps jsonb       NOT NULL DEFAULT '[]',
    version         integer     NOT NULL DEFAULT 1,
    correlation_id  uuid        NOT NULL,
    parked_reason   text,
    deadline_at     timestamptz,
    started_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT instance_status_check
        CHECK (status IN ('RUNNING', 'COMPENSATING', 'COMPLETED', 'COMPENSATED', 'PARKED')),
    CONSTRAINT instance_parked_has_reason CHECK (status <> 'PARKED' OR parked_reason IS NOT NULL)
);
CREATE INDEX instance_type_status_idx ON saga.instance (saga_type, status);

-- Projection checkpoints: written in the same transaction as the read-model rows.
CREATE TABLE projection.checkpoint (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Idempotency records: key -> stored response, written in the command's transaction.
CREATE TABLE ops.idempotency (
    scope            text        NOT NULL,
    key              text        NOT NULL,
    request_hash     text        NOT NULL,
    status_code      integer,
    response_body    bytea,
    response_headers jsonb       NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_created_idx ON ops.idempotency (created_at);

-- Dead letters: a message that used up its retries, kept with its error until an operator
-- re-queues or discards it. Later messages of the same FIFO group wait here behind it.
CREATE TABLE ops.parked_message (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue_name  text        NOT NULL,
    group_key   text,
    msg_id      bigint      NOT NULL,
    message     jsonb       NOT NULL,
    headers     jsonb,
    read_ct     integer     NOT NULL,
    error       text        NOT NULL,
    enqueued_at timestamptz,
    parked_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_message_queue_group_idx ON ops.parked_message (queue_name, group_key);

-- Broker (outbox/broker.py): helpers over pgmq's per-queue tables, which only dynamic SQL can
-- name; the queue name is quoted by pgmq.format_table_name and format('%I') like pgmq does.
-- When the next message of a queue becomes visible (delayed, backing off or in flight): an idle
-- consumer sleeps until then rather than polling blindly.
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

-- Put a parked message back under its original msg_id (read_ct reset), so it sits ahead of any
-- later message of its FIFO group that is still queued; pgmq.send would append it behind them.
CREATE FUNCTION outbox.pgmq_restore(queue_name text, msg_id bigint, enqueued_at timestamptz,
                                    message jsonb, headers jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('INSERT INTO pgmq.%I (msg_id, read_ct, enqueued_at, vt, message, headers) '
                   'OVERRIDING SYSTEM VALUE VALUES ($1, 0, $2, clock_timestamp(), $3, $4)',
                   pgmq.format_table_name(queue_name, 'q'))
    USING msg_id, coalesce(enqueued_at, clock_timestamp()), message, headers;
    RETURN msg_id;
END;
$$;

-- Retry without counting the attempt: the delivery failed because the database connection
-- was lost, which says nothing about the message (outbox/errors.py). pgmq.set_vt keeps read_ct.
CREATE FUNCTION outbox.pgmq_retry_uncounted(queue_name text, msg_ids bigint[], visible_at timestamptz)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'UPDATE pgmq.%I SET vt = $2, read_ct = greatest(read_ct - 1, 0) '
        'WHERE msg_id = ANY($1) RETURNING msg_id',
        pgmq.format_table_name(queue_name, 'q'))
    USING msg_ids, visible_at;
END;
$$;
