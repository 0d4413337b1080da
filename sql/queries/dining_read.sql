-- Dining queries the API answers from the read models (customer_center, recommendation views).

-- name: reservation
SELECT reservation_id, customer, restaurant_id, restaurant_name, reserved_date, slot,
       party_size, deposit_amount, status, reject_reason, deposit_status, deposit_reason,
       deposit_updated_at, booking_status, booking_reason, recommendation_status,
       rating_score, rating_comment, rated_at, requested_at, updated_at, last_global_position
FROM customer_center.reservation
WHERE reservation_id = %(reservation_id)s

-- name: reservation_written
-- A reservation the customer center has not projected yet (it was just requested): what the
-- reservation context itself holds, in the read model's columns; what the other contexts
-- decided is not known here (NULL).
SELECT reservation_id, customer, restaurant_id, restaurant_name, date AS reserved_date, slot,
       party_size, deposit_amount, status, status_reason AS reject_reason,
       NULL::text AS deposit_status, NULL::text AS deposit_reason,
       NULL::timestamptz AS deposit_updated_at, NULL::text AS booking_status,
       NULL::text AS booking_reason, NULL::text AS recommendation_status,
       NULL::integer AS rating_score, NULL::text AS rating_comment,
       NULL::timestamptz AS rated_at, requested_at, updated_at,
       NULL::bigint AS last_global_position
FROM reservation.reservation
WHERE reservation_id = %(reservation_id)s

-- name: customer_reservations
-- Newest first: the (customer, requested_at DESC NULLS LAST) index, ties by id. A page is
-- offset rows in, or the rows after a cursor (api.cursors; after_id NULL: none), which a row
-- requested later than the cursor (made while the client pages) does not shift as it shifts
-- offsets. after_at NULL with a cursor: it is in the rows without a requested_at, which come
-- last.
SELECT reservation_id, customer, restaurant_id, restaurant_name, reserved_date, slot,
       party_size, deposit_amount, status, reject_reason, deposit_status, deposit_reason,
       deposit_updated_at, booking_status, booking_reason, recommendation_status,
       rating_score, rating_comment, rated_at, requested_at, updated_at, last_global_position
FROM customer_center.reservation
WHERE customer = %(customer)s
  AND (%(after_id)s::uuid IS NULL
       OR CASE WHEN %(after_at)s::timestamptz IS NULL
               THEN requested_at IS NULL AND reservation_id < %(after_id)s::uuid
               ELSE (requested_at, reservation_id)
                        < (%(after_at)s::timestamptz, %(after_id)s::uuid)
                    OR requested_at IS NULL
          END)
ORDER BY requested_at DESC NULLS LAST, reservation_id DESC
LIMIT %(limit)s OFFSET %(offset)s

-- name: customer_timeline
-- The customer's own entries only: ownership comes from the reservation row (only the request
-- names the customer). Null reservation_id: every reservation of the customer.
SELECT t.global_position, t.reservation_id, t.kind, t.type, t.summary, t.occurred_at
FROM customer_center.timeline t
JOIN customer_center.reservation r ON r.reservation_id = t.reservation_id
WHERE r.customer = %(customer)s
  AND (%(reservation_id)s::uuid IS NULL OR t.reservation_id = %(reservation_id)s::uuid)
  AND t.global_position > %(after)s
ORDER BY t.global_position
LIMIT %(limit)s

-- name: ranking
-- Bayesian average = (C * m + sum of scores) / (C + number of ratings): every restaurant
-- starts with C imaginary ratings of m, so a single 5 cannot outrank many 4s. Restaurants
-- with no rating yet sit at m. Active entries: registered and not deleted (or rejected).
WITH active AS (
    SELECT restaurant_id, count(*) AS active_entries
    FROM recommendation.entry_activity
    WHERE status = 'registered' AND restaurant_id IS NOT NULL
    GROUP BY restaurant_id
)
SELECT restaurant_id, r.restaurant_name, r.cuisine,
       coalesce(r.rating_count, 0) AS rating_count,
       coalesce(r.rating_sum, 0) AS rating_sum,
       r.rating_sum::float8 / nullif(r.rating_count, 0) AS average,
       (%(prior_weight)s::float8 * %(prior_mean)s::float8 + coalesce(r.rating_sum, 0))
         / (%(prior_weight)s::float8 + coalesce(r.rating_count, 0)) AS bayesian_average,
       coalesce(a.active_entries, 0) AS active_entries
FROM recommendation.restaurant_rating r
FULL JOIN active a USING (restaurant_id)
ORDER BY bayesian_average DESC, rating_count DESC, restaurant_id
LIMIT %(limit)s OFFSET %(offset)s


-- name: restaurant_reservations
-- A restaurant's reservations of one day by slot: its owner's list of whom to expect and whose
-- visit to record. From the reservation context's own table, so a reservation is listed as
-- soon as its request returns (reservation_restaurant_day_idx, 0013). A page continues after
-- the (slot, reservation_id) of the last row of the page before.
SELECT reservation_id, customer, date, slot, party_size, status, status_reason, requested_at
FROM reservation.reservation
WHERE restaurant_id = %(restaurant_id)s AND date = %(date)s
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(after_id)s::uuid IS NULL
       OR (slot, reservation_id) > (%(after_slot)s::text, %(after_id)s::uuid))
ORDER BY slot, reservation_id
LIMIT %(limit)s
