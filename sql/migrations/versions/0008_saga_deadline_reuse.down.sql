ALTER TABLE saga.instance DROP COLUMN deadline_msg_at;
ALTER TABLE saga.instance DROP COLUMN deadline_name;
