-- A restaurant's reservations of one day, by slot: the owner's list of whom to expect
-- (GET /dining/restaurants/{id}/reservations, dining_read.restaurant_reservations).
CREATE INDEX reservation_restaurant_day_idx
    ON reservation.reservation (restaurant_id, date, slot, reservation_id);
