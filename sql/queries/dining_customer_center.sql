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

-- name: upsert_requested
-- The request itself is the authority on what was booked: its facts replace partial ones.
INSERT INTO {table} AS r (reservation_id, customer, restaurant_id, restaurant_name,
                          reserved_date, slot, party_size, deposit_amount, status,
                          status_version, requested_at, updated_at, last_global_position)
VALUES (%(reservation_id)s, %(customer)s, %(restaurant_id)s, %(restaurant_name)s,
        %(reserved_date)s, %(slot)s, %(party_size)s, %(deposit_amount)s, 'PENDING',
        %(version)s, %(occurred_at)s, %(occurred_at)s, %(global_position)s)
ON CONFLICT (reservation_id) DO UPDATE
SET customer = excluded.customer,
    restaurant_id = excluded.restaurant_id,
    restaurant_name = excluded.restaurant_name,
    reserved_date = excluded.reserved_date,
    slot = excluded.slot,
    party_size = excluded.party_size,
    deposit_amount = excluded.deposit_amount,
    status = CASE WHEN excluded.status_version > r.status_version
                  THEN excluded.status ELSE r.status END,
    status_version = greatest(r.status_version, excluded.status_version),
    requested_at = excluded.requested_at,
    updated_at = greatest(r.updated_at, excluded.updated_at),
    last_global_position = greatest(r.last_global_position, excluded.last_global_position)

-- name: upsert_status
-- Reservation status changes; the reject reason belongs to the status that carried it.
INSERT INTO {table} AS r (reservation_id, customer, restaurant_id, status, status_version,
                          reject_reason, updated_at, last_global_position)
VALUES (%(reservation_id)s, %(customer)s, %(restaurant_id)s, %(status)s, %(version)s,
        %(reason)s, %(occurred_at)s, %(global_position)s)
ON CONFLICT (reservation_id) DO UPDATE
SET customer = coalesce(r.customer, excluded.customer),
    restaurant_id = coalesce(r.restaurant_id, excluded.restaurant_id),
    status = CASE WHEN excluded.status_version > r.status_version
                  THEN excluded.status ELSE r.status END,
    reject_reason = CASE WHEN excluded.status_version > r.status_version
                         THEN excluded.reject_reason ELSE r.reject_reason END,
    status_version = greatest(r.status_version, excluded.status_version),
    updated_at = greatest(r.updated_at, excluded.updated_at),
    last_global_position = greatest(r.last_global_position, excluded.last_global_position)

-- name: upsert_rating
INSERT INTO {table} AS r (reservation_id, customer, restaurant_id, rating_score,
                          rating_comment, rated_at, updated_at, last_global_position)
VALUES (%(reservation_id)s, %(customer)s, %(restaurant_id)s, %(score)s, %(comment)s,
        %(occurred_at)s, %(occurred_at)s, %(global_position)s)
ON CONFLICT (reservation_id) DO UPDATE
SET customer = coalesce(r.customer, excluded.customer),
    restaurant_id = coalesce(r.restaurant_id, excluded.restaurant_id),
    rating_score = excluded.rating_score,
    rating_comment = excluded.rating_comment,
    rated_at = excluded.rated_at,
    updated_at = greatest(r.updated_at, excluded.updated_at),
    last_global_position = greatest(r.last_global_position, excluded.last_global_position)

-- name: upsert_deposit
-- The request's deposit amount wins over the one a deposit event reports (they agree anyway).
INSERT INTO {table} AS r (reservation_id, deposit_amount, deposit_status, deposit_version,
                          deposit_reason, deposit_updated_at, updated_at, last_global_position)
VALUES (%(reservation_id)s, %(amount)s, %(state)s, %(version)s, %(reason)s, %(occurred_at)s,
        %(occurred_at)s, %(global_position)s)
ON CONFLICT (reservation_id) DO UPDATE
SET deposit_amount = coalesce(r.deposit_amount, excluded.deposit_amount),
    deposit_status = CASE WHEN excluded.deposit_version > r.deposit_version
                          THEN excluded.deposit_status ELSE r.deposit_status END,
    deposit_reason = CASE WHEN excluded.deposit_version > r.deposit_version
                          THEN excluded.deposit_reason ELSE r.deposit_reason END,
    deposit_updated_at = CASE WHEN excluded.deposit_version > r.deposit_version
                              THEN excluded.deposit_updated_at ELSE r.deposit_updated_at END,
    deposit_version = greatest(r.deposit_version, excluded.deposit_version),
    updated_at = greatest(r.updated_at, excluded.updated_at),
    last_global_position = greatest(r.last_global_position, excluded.last_global_position)

-- name: upsert_booking
INSERT INTO {table} AS r (reservation_id, restaurant_id, booking_status, booking_version,
                          booking_reason, updated_at, last_global_position)
VALUES (%(reservation_id)s, %(restaurant_id)s, %(state)s, %(version)s, %(reason)s,
        %(occurred_at)s, %(global_position)s)
ON CONFLICT (reservation_id) DO UPDATE
SET restaurant_id = coalesce(r.restaurant_id, excluded.restaurant_id),
    booking_status = CASE WHEN excluded.booking_version > r.booking_version
                          THEN excluded.booking_status ELSE r.booking_status END,
    booking_reason = CASE WHEN excluded.booking_version > r.booking_version
                          THEN excluded.booking_reason ELSE r.booking_reason END,
    booking_version = greatest(r.booking_version, excluded.booking_version),
    updated_at = greatest(r.updated_at, excluded.updated_at),
    last_global_position = greatest(r.last_global_position, excluded.last_global_position)

-- name: upsert_recommendation
INSERT INTO {table} AS r (reservation_id, restaurant_id, recommendation_status,
                          recommendation_version, updated_at, last_global_position)
VALUES (%(reservation_id)s, %(restaurant_id)s, %(state)s, %(version)s, %(occurred_at)s,
        %(global_position)s)
ON CONFLICT (reservation_id) DO UPDATE
SET restaurant_id = coalesce(r.restaurant_id, excluded.restaurant_id),
    recommendation_status = CASE WHEN excluded.recommendation_version > r.recommendation_version
                                 THEN excluded.recommendation_status
                                 ELSE r.recommendation_status END,
    recommendation_version = greatest(r.recommendation_version, excluded.recommendation_version),
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
-- A whole batch in one statement, one array per column. The log position is the key: applying
-- a message twice leaves one entry (and a batch never holds one position twice).
INSERT INTO {table} (global_position, reservation_id, event_id, kind, type, stream, version,
                     summary, correlation_id, occurred_at)
SELECT *
FROM unnest(%(global_position)s::bigint[], %(reservation_id)s::uuid[], %(event_id)s::uuid[],
            %(kind)s::text[], %(type)s::text[], %(stream)s::text[], %(version)s::integer[],
            %(summary)s::text[], %(correlation_id)s::uuid[], %(occurred_at)s::timestamptz[])
ON CONFLICT (global_position) DO NOTHING
