-- Dining's write side (schemas restaurant, reservation, deposit, recommendation).

-- restaurant ---------------------------------------------------------------------------------

-- name: insert_restaurant
INSERT INTO restaurant.restaurant (restaurant_id, owner, name, cuisine, slots, capacity_per_slot,
                                   deposit_amount)
VALUES (%(restaurant_id)s, %(owner)s, %(name)s, %(cuisine)s, %(slots)s, %(capacity_per_slot)s,
        %(deposit_amount)s)

-- name: get_restaurant
SELECT restaurant_id, owner, name, cuisine, slots, capacity_per_slot, deposit_amount
FROM restaurant.restaurant WHERE restaurant_id = %(restaurant_id)s

-- name: list_restaurants
SELECT restaurant_id, owner, name, cuisine, slots, capacity_per_slot, deposit_amount
FROM restaurant.restaurant
WHERE (%(cuisine)s::text IS NULL OR cuisine = %(cuisine)s)
ORDER BY name, restaurant_id
LIMIT %(limit)s OFFSET %(offset)s

-- name: accept_booking
-- AcceptReservation in one statement. A reservation already booked (an earlier delivery of
-- the command) takes nothing again. Otherwise the first booking of a slot creates its row
-- with the restaurant's capacity and later ones add to it, but only while the party still
-- fits: a full slot updates nothing and raises nothing, so the refusal commits in the same
-- transaction without a savepoint. ON CONFLICT locks the slot's row even when its WHERE
-- declines the update, so concurrent bookings of the last seats queue on it and see each
-- other's counts; slot_booking_capacity still refuses any count above the capacity. The
-- booking row is written only when seats were taken. Outcome columns: already, offered (the
-- restaurant exists and offers the slot), seats_taken and capacity (NULL when nothing was
-- taken).
WITH existing AS (
    SELECT 1 FROM restaurant.booking WHERE reservation_id = %(reservation_id)s FOR UPDATE
), offered AS (
    SELECT r.restaurant_id, r.capacity_per_slot
    FROM restaurant.restaurant r
    WHERE r.restaurant_id = %(restaurant_id)s AND %(slot)s::text = ANY (r.slots)
), taken AS (
    INSERT INTO restaurant.slot_booking AS s (restaurant_id, date, slot, capacity, seats_taken)
    SELECT o.restaurant_id, %(date)s, %(slot)s, o.capacity_per_slot, %(party_size)s
    FROM offered o
    WHERE NOT EXISTS (SELECT 1 FROM existing) AND %(party_size)s <= o.capacity_per_slot
    ON CONFLICT (restaurant_id, date, slot)
    DO UPDATE SET seats_taken = s.seats_taken + excluded.seats_taken
    WHERE s.seats_taken + excluded.seats_taken <= s.capacity
    RETURNING s.seats_taken, s.capacity
), booked AS (
    INSERT INTO restaurant.booking (reservation_id, restaurant_id, date, slot, party_size)
    SELECT %(reservation_id)s, %(restaurant_id)s, %(date)s, %(slot)s, %(party_size)s
    FROM taken
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM existing) AS already,
       EXISTS (SELECT 1 FROM offered) AS offered,
       (SELECT seats_taken FROM taken) AS seats_taken,
       (SELECT capacity FROM taken) AS capacity

-- name: lock_booking
SELECT reservation_id, restaurant_id, date, slot, party_size, status
FROM restaurant.booking WHERE reservation_id = %(reservation_id)s FOR UPDATE

-- name: release_booking
-- Only an ACCEPTED booking gives its seats back, so releasing twice gives them back once.
WITH released AS (
    UPDATE restaurant.booking SET status = 'RELEASED', released_at = now()
    WHERE reservation_id = %(reservation_id)s AND status = 'ACCEPTED'
    RETURNING restaurant_id, date, slot, party_size
)
UPDATE restaurant.slot_booking s SET seats_taken = s.seats_taken - released.party_size
FROM released
WHERE (s.restaurant_id, s.date, s.slot) = (released.restaurant_id, released.date, released.slot)
RETURNING s.seats_taken

-- reservation --------------------------------------------------------------------------------

-- name: insert_reservation
-- A new reservation, written only while the restaurant is still as the request read it (an
-- earlier statement, or an earlier request: api/dining/restaurant_cache.py): the name, slots,
-- seats and deposit the reservation was decided on. Otherwise outbox.expect fails the statement
-- (YH001, outbox.log.StaleRead) and nothing is written.
INSERT INTO reservation.reservation (reservation_id, customer, restaurant_id, restaurant_name,
                                     date, slot, party_size, deposit_amount, status)
SELECT %(reservation_id)s::uuid, %(customer)s::text, %(restaurant_id)s::uuid,
       %(restaurant_name)s::text, %(date)s::date, %(slot)s::text, %(party_size)s::integer,
       %(deposit_amount)s::integer, %(status)s::text
WHERE outbox.expect(
    EXISTS (SELECT FROM restaurant.restaurant r
            WHERE r.restaurant_id = %(restaurant_id)s::uuid
              AND r.name = %(restaurant_name)s::text
              AND r.slots = %(restaurant_slots)s::text[]
              AND r.capacity_per_slot = %(restaurant_capacity)s::integer
              AND r.deposit_amount = %(deposit_amount)s::integer),
    'restaurant ' || %(restaurant_id)s::text || ' has changed since this request read it')

-- name: get_reservation
SELECT r.reservation_id, r.customer, r.restaurant_id, r.restaurant_name, r.date, r.slot,
       r.party_size, r.deposit_amount, r.status, r.status_reason,
       EXISTS (SELECT 1 FROM reservation.rating g WHERE g.reservation_id = r.reservation_id)
           AS rated
FROM reservation.reservation r WHERE r.reservation_id = %(reservation_id)s

-- name: lock_reservation
-- Every change of a reservation (HTTP or saga command) takes this lock first: they serialise.
-- "rated" is as of the statement's snapshot, taken before any wait for the lock: a rating
-- committed while it waited is not in it (record_visit reads the rating again after it).
SELECT r.reservation_id, r.customer, r.restaurant_id, r.restaurant_name, r.date, r.slot,
       r.party_size, r.deposit_amount, r.status, r.status_reason,
       EXISTS (SELECT 1 FROM reservation.rating g WHERE g.reservation_id = r.reservation_id)
           AS rated
FROM reservation.reservation r WHERE r.reservation_id = %(reservation_id)s FOR UPDATE

-- name: lock_and_move_reservation
-- A saga command in one round trip: lock_reservation's row as it was, and the status change
-- the command would make (to, with the reason if one is given) already written when the old
-- status is one it may leave from. The domain still decides (reservations.handle_saga_command):
-- it checks the change against the old row and writes its own result if this one differs.
WITH old AS (
    SELECT r.reservation_id, r.customer, r.restaurant_id, r.restaurant_name, r.date, r.slot,
           r.party_size, r.deposit_amount, r.status, r.status_reason,
           EXISTS (SELECT 1 FROM reservation.rating g WHERE g.reservation_id = r.reservation_id)
               AS rated
    FROM reservation.reservation r WHERE r.reservation_id = %(reservation_id)s FOR UPDATE
), moved AS (
    UPDATE reservation.reservation r
    SET status = %(to)s, status_reason = coalesce(%(reason)s::text, old.status_reason),
        updated_at = now()
    FROM old
    WHERE r.reservation_id = old.reservation_id AND old.status = ANY(%(allowed)s::text[])
    RETURNING r.status, r.status_reason
)
SELECT old.*, moved.status AS moved_status, moved.status_reason AS moved_reason,
       moved.status IS NOT NULL AS moved
FROM old LEFT JOIN moved ON true

-- name: save_reservation_status
UPDATE reservation.reservation
SET status = %(status)s, status_reason = %(status_reason)s, updated_at = now()
WHERE reservation_id = %(reservation_id)s

-- name: get_rating
SELECT score, comment, rated_at FROM reservation.rating WHERE reservation_id = %(reservation_id)s

-- name: insert_rating
INSERT INTO reservation.rating (reservation_id, score, comment)
VALUES (%(reservation_id)s, %(score)s, %(comment)s)

-- deposit ------------------------------------------------------------------------------------

-- name: get_deposit
SELECT reservation_id, customer, amount, status, failure_reason, charged_at, updated_at
FROM deposit.deposit WHERE reservation_id = %(reservation_id)s

-- name: lock_deposits
-- A batch's deposits that exist already, locked in reservation order (see lock_deposit).
SELECT reservation_id FROM deposit.deposit
WHERE reservation_id = ANY(%(reservation_ids)s::uuid[])
ORDER BY reservation_id
FOR UPDATE

-- name: lock_deposit
SELECT reservation_id, customer, amount, status, charge_reference, failure_reason,
       refund_reference
FROM deposit.deposit WHERE reservation_id = %(reservation_id)s FOR UPDATE

-- name: insert_deposit
INSERT INTO deposit.deposit (reservation_id, customer, amount, status, charge_reference,
                             failure_reason)
VALUES (%(reservation_id)s, %(customer)s, %(amount)s, %(status)s, %(charge_reference)s,
        %(failure_reason)s)

-- name: save_deposit
UPDATE deposit.deposit
SET status = %(status)s, refund_reference = %(refund_reference)s, updated_at = now()
WHERE reservation_id = %(reservation_id)s

-- recommendation -----------------------------------------------------------------------------

-- name: entry_registration
-- What registering an entry depends on, in one round trip: whether the reservation's entry
-- exists (locked, as lock_entry locks it) and why its restaurant is suspended, if it is.
SELECT EXISTS (SELECT 1 FROM recommendation.entry
               WHERE reservation_id = %(reservation_id)s FOR UPDATE) AS registered,
       (SELECT reason FROM recommendation.suspension
        WHERE restaurant_id = %(restaurant_id)s) AS suspension

-- name: suspend_restaurant
INSERT INTO recommendation.suspension (restaurant_id, reason)
VALUES (%(restaurant_id)s, %(reason)s)
ON CONFLICT (restaurant_id) DO UPDATE SET reason = excluded.reason, suspended_at = now()

-- name: lift_suspension
DELETE FROM recommendation.suspension WHERE restaurant_id = %(restaurant_id)s

-- name: insert_entry
INSERT INTO recommendation.entry (reservation_id, restaurant_id, customer)
VALUES (%(reservation_id)s, %(restaurant_id)s, %(customer)s)

-- name: lock_entry
SELECT reservation_id, restaurant_id, customer, status
FROM recommendation.entry WHERE reservation_id = %(reservation_id)s FOR UPDATE

-- name: delete_entry
UPDATE recommendation.entry SET status = 'DELETED', deleted_at = now()
WHERE reservation_id = %(reservation_id)s AND status = 'REGISTERED'
