ALTER TABLE saga.instance DROP COLUMN deadline_msg_id;
