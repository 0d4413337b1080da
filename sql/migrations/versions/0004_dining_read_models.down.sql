DROP TABLE recommendation.entry_activity;
DROP TABLE recommendation.restaurant_rating;
DROP TABLE customer_center.timeline;
DROP TABLE customer_center.reservation;
