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

-- name: take_seats
-- The first booking of a slot creates its row with the restaurant's capacity; later ones add
-- to it. Either way slot_booking_capacity refuses more seats than the slot has, and a
-- concurrent booking of the same slot waits for this one's row lock first. No row comes back
-- when the restaurant does not exist or does not offer the slot.
INSERT INTO restaurant.slot_booking AS s (restaurant_id, date, slot, capacity, seats_taken)
SELECT r.restaurant_id, %(date)s, %(slot)s, r.capacity_per_slot, %(party_size)s
FROM restaurant.restaurant r
WHERE r.restaurant_id = %(restaurant_id)s AND %(slot)s::text = ANY (r.slots)
ON CONFLICT (restaurant_id, date, slot)
DO UPDATE SET seats_taken = s.seats_taken + excluded.seats_taken
RETURNING s.seats_taken, s.capacity

-- name: insert_booking
INSERT INTO restaurant.booking (reservation_id, restaurant_id, date, slot, party_size)
VALUES (%(reservation_id)s, %(restaurant_id)s, %(date)s, %(slot)s, %(party_size)s)

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
INSERT INTO reservation.reservation (reservation_id, customer, restaurant_id, restaurant_name,
                                     date, slot, party_size, deposit_amount, status)
VALUES (%(reservation_id)s, %(customer)s, %(restaurant_id)s, %(restaurant_name)s, %(date)s,
        %(slot)s, %(party_size)s, %(deposit_amount)s, %(status)s)

-- name: get_reservation
SELECT r.reservation_id, r.customer, r.restaurant_id, r.restaurant_name, r.date, r.slot,
       r.party_size, r.deposit_amount, r.status, r.status_reason,
       EXISTS (SELECT 1 FROM reservation.rating g WHERE g.reservation_id = r.reservation_id)
           AS rated
FROM reservation.reservation r WHERE r.reservation_id = %(reservation_id)s

-- name: lock_reservation
-- Every change of a reservation (HTTP or saga command) takes this lock first: they serialise.
SELECT r.reservation_id, r.customer, r.restaurant_id, r.restaurant_name, r.date, r.slot,
       r.party_size, r.deposit_amount, r.status, r.status_reason,
       EXISTS (SELECT 1 FROM reservation.rating g WHERE g.reservation_id = r.reservation_id)
           AS rated
FROM reservation.reservation r WHERE r.reservation_id = %(reservation_id)s FOR UPDATE

-- name: save_reservation_status
UPDATE reservation.reservation
SET status = %(status)s, status_reason = %(status_reason)s, updated_at = now()
WHERE reservation_id = %(reservation_id)s

-- name: insert_rating
INSERT INTO reservation.rating (reservation_id, score, comment)
VALUES (%(reservation_id)s, %(score)s, %(comment)s)

-- deposit ------------------------------------------------------------------------------------

-- name: get_deposit
SELECT reservation_id, customer, amount, status, failure_reason, charged_at, updated_at
FROM deposit.deposit WHERE reservation_id = %(reservation_id)s

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

-- name: suspension
SELECT reason FROM recommendation.suspension WHERE restaurant_id = %(restaurant_id)s

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
