-- Recommendation read models (schema recommendation), written by projections.dining. The
-- recommendation context's own entry tables belong to its write side; these are derived views.
-- `{table}` is filled in with psycopg.sql (live table or rebuild twin); migration 0004 runs
-- the table blocks for the live tables.

-- name: create_restaurant_rating_table
-- Per restaurant: its catalogue name and the running count and sum of its ratings. Averages
-- are computed when read, so the ranking's prior can change without a rebuild.
CREATE TABLE {table} (
    restaurant_id        uuid        PRIMARY KEY,
    restaurant_name      text,
    cuisine              text,
    rating_count         integer     NOT NULL DEFAULT 0 CHECK (rating_count >= 0),
    rating_sum           bigint      NOT NULL DEFAULT 0 CHECK (rating_sum >= 0),
    last_rated_at        timestamptz,
    updated_at           timestamptz NOT NULL,
    last_global_position bigint      NOT NULL
);

-- name: upsert_restaurant
INSERT INTO {table} AS r (restaurant_id, restaurant_name, cuisine, updated_at,
                          last_global_position)
VALUES (%(restaurant_id)s, %(name)s, %(cuisine)s, %(occurred_at)s, %(global_position)s)
ON CONFLICT (restaurant_id) DO UPDATE
SET restaurant_name = excluded.restaurant_name,
    cuisine = excluded.cuisine,
    updated_at = greatest(r.updated_at, excluded.updated_at),
    last_global_position = greatest(r.last_global_position, excluded.last_global_position)

-- name: add_rating
-- Counting is exact because the runner commits each batch with its checkpoint (exactly once).
INSERT INTO {table} AS r (restaurant_id, rating_count, rating_sum, last_rated_at, updated_at,
                          last_global_position)
VALUES (%(restaurant_id)s, 1, %(score)s, %(occurred_at)s, %(occurred_at)s,
        %(global_position)s)
ON CONFLICT (restaurant_id) DO UPDATE
SET rating_count = r.rating_count + 1,
    rating_sum = r.rating_sum + excluded.rating_sum,
    last_rated_at = greatest(r.last_rated_at, excluded.last_rated_at),
    updated_at = greatest(r.updated_at, excluded.updated_at),
    last_global_position = greatest(r.last_global_position, excluded.last_global_position)

-- name: remove_rating
-- A withdrawn rating (a no-show's) always follows its ReservationRated in the log, so the row
-- exists and holds it; this takes it out again.
UPDATE {table} AS r
SET rating_count = r.rating_count - 1,
    rating_sum = r.rating_sum - %(score)s,
    updated_at = greatest(r.updated_at, %(occurred_at)s),
    last_global_position = greatest(r.last_global_position, %(global_position)s)
WHERE r.restaurant_id = %(restaurant_id)s

-- name: create_entry_activity_table
-- One row per reservation's recommendation entry. Only the registration names the restaurant
-- (a deletion does not), so active entries are counted from here rather than kept as a
-- per-restaurant counter that a deletion could not find.
CREATE TABLE {table} (
    reservation_id       uuid        PRIMARY KEY,
    restaurant_id        uuid,
    status               text        NOT NULL CHECK (status IN ('registered', 'rejected',
                                                                'deleted')),
    version              integer     NOT NULL,
    updated_at           timestamptz NOT NULL,
    last_global_position bigint      NOT NULL
);
CREATE INDEX ON {table} (restaurant_id) WHERE status = 'registered';

-- name: upsert_entries
-- A batch's entries, one JSON object per reservation (projections.dining.recommendation_views
-- merges the batch's events per reservation the same way this merges them with the stored
-- row). The newest version of the entry's stream wins, whatever order the events are applied
-- in; only the registration names the restaurant.
INSERT INTO {table} AS e (reservation_id, restaurant_id, status, version, updated_at,
                          last_global_position)
SELECT r.reservation_id, r.restaurant_id, r.status, r.version, r.updated_at,
       r.last_global_position
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(reservation_id uuid, restaurant_id uuid,
                                              status text, version integer,
                                              updated_at timestamptz, last_global_position bigint)
ON CONFLICT (reservation_id) DO UPDATE
SET restaurant_id = coalesce(e.restaurant_id, excluded.restaurant_id),
    status = CASE WHEN excluded.version > e.version THEN excluded.status ELSE e.status END,
    version = greatest(e.version, excluded.version),
    updated_at = greatest(e.updated_at, excluded.updated_at),
    last_global_position = greatest(e.last_global_position, excluded.last_global_position)
