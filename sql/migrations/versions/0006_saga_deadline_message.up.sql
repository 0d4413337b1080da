-- The msg_id of the delayed deadline message a saga is waiting on (in its own queue). When the
-- saga moves on, that message is deleted in the same transaction instead of being delivered
-- later only to be ignored as stale.
ALTER TABLE saga.instance ADD COLUMN deadline_msg_id bigint;
