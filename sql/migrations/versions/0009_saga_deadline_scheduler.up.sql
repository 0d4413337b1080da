-- Saga deadlines are fired by a scheduler in each worker process (outbox/saga_deadlines.py)
-- instead of a delayed pgmq message sent per saga: the instance row already says when its
-- deadline falls, and a message is sent only once it has passed. While steps answer in time,
-- a saga sends and deletes no deadline message at all, and its queue holds no invisible rows
-- for every read to walk past. The scheduler finds due instances through this index.
-- Messages sent by the release before this one stay valid: deadline_msg_id still names them.
CREATE INDEX instance_deadline_due_idx ON saga.instance (deadline_at)
    WHERE status = 'RUNNING' AND deadline_msg_id IS NULL AND deadline_at IS NOT NULL;
