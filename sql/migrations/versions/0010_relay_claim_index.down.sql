-- Back to the UNIQUE constraint of 0001 (entries for unrelayed rows included).
ALTER INDEX outbox.event_global_position_key RENAME TO event_global_position_relayed_key;
ALTER TABLE outbox.event ADD CONSTRAINT event_global_position_key UNIQUE (global_position);
DROP INDEX outbox.event_global_position_relayed_key;
