-- The customer center read models (schema customer_center), written by projections.dining.
-- `{table}` is filled in with the table's identifier (the live table, or its rebuild twin):
-- these blocks go through psycopg.sql.SQL(...).format(table=...), never string formatting.
-- The table blocks are also what migration 0004 runs for the live tables: one definition.

-- name: create_reservation_table
-- One row per reservation, whatever order its facts arrive in: every column but the key may
-- stay null until an event supplies it. Each facet (reservation status, deposit, restaurant
-- booking, recommendation entry) keeps the version of its stream that last set it, so an event
-- applied late or twice never overwrites a newer state.
CREATE TABLE {table} (
    reservation_id         uuid        PRIMARY KEY,
    customer               text,
    restaurant_id          uuid,
    restaurant_name        text,
    reserved_date          date,
    slot                   text,
    party_size             integer,
    deposit_amount         integer,
    status                 text CHECK (status IN ('PENDING', 'DEPOSIT_PAID', 'CONFIRMED',
                                                  'REJECTED', 'CANCELLED', 'COMPLETED',
                                                  'NO_SHOW')),
    status_version         integer     NOT NULL DEFAULT 0,
    reject_reason          text,
    deposit_status         text CHECK (deposit_status IN ('PAID', 'FAILED', 'REFUNDED',
                                                          'FORFEITED')),
    deposit_version        integer     NOT NULL DEFAULT 0,
    deposit_reason         text,
    deposit_updated_at     timestamptz,
    booking_status         text CHECK (booking_status IN ('accepted', 'refused', 'released')),
    booking_version        integer     NOT NULL DEFAULT 0,
    booking_reason         text,
    recommendation_status  text CHECK (recommendation_status IN ('registered', 'rejected',
                                                                 'deleted')),
    recommendation_version integer     NOT NULL DEFAULT 0,
    rating_score           integer,
    rating_comment         text,
    rated_at               timestamptz,
    requested_at           timestamptz,
    updated_at             timestamptz NOT NULL,
    last_global_position   bigint      NOT NULL
);
-- "My reservations, newest first" reads this index in order and stops at the page's end.
-- Not (..., reservation_id DESC): the generated name would pass 63 bytes on a rebuild twin,
-- be cut, and no longer be renamed back to the live name after the swap.
CREATE INDEX ON {table} (customer, requested_at DESC NULLS LAST);

-- name: upsert_reservations
-- A whole batch, one JSON object per reservation (projections.dining.customer_reservations
-- merges the batch's events per reservation first, so no row comes twice). Each facet
-- (reservation status, deposit, booking, recommendation entry) carries the version of its
-- stream that set it, 0 when the batch says nothing of it, and replaces the stored facet only
-- when newer: events applied late, twice or out of order leave the row of log order. The
-- request's facts (requested_at set) are the authority on what was booked and replace partial
-- ones; other events only fill what is still empty. The newest rating wins.
INSERT INTO {table} AS r (reservation_id, customer, restaurant_id, restaurant_name,
                          reserved_date, slot, party_size, deposit_amount,
                          status, status_version, reject_reason,
                          deposit_status, deposit_version, deposit_reason, deposit_updated_at,
                          booking_status, booking_version, booking_reason,
                          recommendation_status, recommendation_version,
                          rating_score, rating_comment, rated_at,
                          requested_at, updated_at, last_global_position)
SELECT d.reservation_id, d.customer, d.restaurant_id, d.restaurant_name,
       d.reserved_date, d.slot, d.party_size, d.deposit_amount,
       d.status, d.status_version, d.status_reason,
       d.deposit, d.deposit_version, d.deposit_reason, d.deposit_updated_at,
       d.booking, d.booking_version, d.booking_reason,
       d.recommendation, d.recommendation_version,
       d.rating_score, d.rating_comment, d.rated_at,
       d.requested_at, d.updated_at, d.last_global_position
FROM jsonb_to_recordset(%(rows)s::jsonb) AS d(
    reservation_id uuid, customer text, restaurant_id uuid, restaurant_name text,
    reserved_date date, slot text, party_size integer, deposit_amount integer,
    status text, status_version integer, status_reason text,
    deposit text, deposit_version integer, deposit_reason text, deposit_updated_at timestamptz,
    booking text, booking_version integer, booking_reason text,
    recommendation text, recommendation_version integer,
    rating_score integer, rating_comment text, rated_at timestamptz,
    requested_at timestamptz, updated_at timestamptz, last_global_position bigint)
ON CONFLICT (reservation_id) DO UPDATE
SET customer = CASE WHEN excluded.requested_at IS NOT NULL THEN excluded.customer
                    ELSE coalesce(r.customer, excluded.customer) END,
    restaurant_id = CASE WHEN excluded.requested_at IS NOT NULL THEN excluded.restaurant_id
                         ELSE coalesce(r.restaurant_id, excluded.restaurant_id) END,
    restaurant_name = CASE WHEN excluded.requested_at IS NOT NULL
                           THEN excluded.restaurant_name ELSE r.restaurant_name END,
    reserved_date = CASE WHEN excluded.requested_at IS NOT NULL
                         THEN excluded.reserved_date ELSE r.reserved_date END,
    slot = CASE WHEN excluded.requested_at IS NOT NULL THEN excluded.slot ELSE r.slot END,
    party_size = CASE WHEN excluded.requested_at IS NOT NULL
                      THEN excluded.party_size ELSE r.party_size END,
    deposit_amount = CASE WHEN excluded.requested_at IS NOT NULL THEN excluded.deposit_amount
                          ELSE coalesce(r.deposit_amount, excluded.deposit_amount) END,
    requested_at = coalesce(excluded.requested_at, r.requested_at),
    status = CASE WHEN excluded.status_version > r.status_version
                  THEN excluded.status ELSE r.status END,
    reject_reason = CASE WHEN excluded.status_version > r.status_version
                         THEN excluded.reject_reason ELSE r.reject_reason END,
    status_version = greatest(r.status_version, excluded.status_version),
    deposit_status = CASE WHEN excluded.deposit_version > r.deposit_version
                          THEN excluded.deposit_status ELSE r.deposit_status END,
    deposit_reason = CASE WHEN excluded.deposit_version > r.deposit_version
                          THEN excluded.deposit_reason ELSE r.deposit_reason END,
    deposit_updated_at = CASE WHEN excluded.deposit_version > r.deposit_version
                              THEN excluded.deposit_updated_at ELSE r.deposit_updated_at END,
    deposit_version = greatest(r.deposit_version, excluded.deposit_version),
    booking_status = CASE WHEN excluded.booking_version > r.booking_version
                          THEN excluded.booking_status ELSE r.booking_status END,
    booking_reason = CASE WHEN excluded.booking_version > r.booking_version
                          THEN excluded.booking_reason ELSE r.booking_reason END,
    booking_version = greatest(r.booking_version, excluded.booking_version),
    recommendation_status = CASE WHEN excluded.recommendation_version > r.recommendation_version
                                 THEN excluded.recommendation_status
                                 ELSE r.recommendation_status END,
    recommendation_version = greatest(r.recommendation_version, excluded.recommendation_version),
    rating_score = CASE WHEN excluded.rated_at IS NOT NULL
                        THEN excluded.rating_score ELSE r.rating_score END,
    rating_comment = CASE WHEN excluded.rated_at IS NOT NULL
                          THEN excluded.rating_comment ELSE r.rating_comment END,
    rated_at = coalesce(excluded.rated_at, r.rated_at),
    updated_at = greatest(r.updated_at, excluded.updated_at),
    last_global_position = greatest(r.last_global_position, excluded.last_global_position)

-- name: create_timeline_table
-- One row per message of a reservation's conversation, keyed by its place in the log.
CREATE TABLE {table} (
    global_position bigint      PRIMARY KEY,
    reservation_id  uuid        NOT NULL,
    event_id        uuid        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('event', 'command')),
    type            text        NOT NULL,
    stream          text        NOT NULL,
    version         integer     NOT NULL,
    summary         text        NOT NULL,
    correlation_id  uuid        NOT NULL,
    occurred_at     timestamptz NOT NULL
);
CREATE INDEX ON {table} (reservation_id, global_position);

-- name: insert_timeline_entries
-- A whole batch in one statement, one JSON object per entry. The log position is the key:
-- applying a message twice leaves one entry (and a batch never holds one position twice).
INSERT INTO {table} (global_position, reservation_id, event_id, kind, type, stream, version,
                     summary, correlation_id, occurred_at)
SELECT *
FROM jsonb_to_recordset(%(rows)s::jsonb)
     AS (global_position bigint, reservation_id uuid, event_id uuid, kind text, type text,
         stream text, version integer, summary text, correlation_id uuid,
         occurred_at timestamptz)
ON CONFLICT (global_position) DO NOTHING
