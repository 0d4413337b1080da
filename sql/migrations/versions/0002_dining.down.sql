DROP TABLE recommendation.suspension;
DROP TABLE recommendation.entry;
DROP TABLE deposit.deposit;
DROP TABLE reservation.rating;
DROP TABLE reservation.reservation;
DROP TABLE restaurant.booking;
DROP TABLE restaurant.slot_booking;
DROP TABLE restaurant.restaurant;
