ALTER TABLE saga.instance DROP COLUMN parked_from;
