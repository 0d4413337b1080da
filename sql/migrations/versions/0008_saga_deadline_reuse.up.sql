-- A saga keeps at most one delayed deadline message and reuses it from step to step: the
-- instance row says which deadline is due (deadline_name, deadline_at); deadline_msg_at is
-- when the pending message fires. A message that fires before the current deadline is due
-- schedules the next one instead of firing (outbox/sagas.py).
ALTER TABLE saga.instance ADD COLUMN deadline_name text;
ALTER TABLE saga.instance ADD COLUMN deadline_msg_at timestamptz;
