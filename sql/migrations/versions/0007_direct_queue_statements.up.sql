-- The broker and the relay now name each pgmq queue's table in statements of their own
-- (sql/queries/queue.sql), prepared once per connection, instead of calling plpgsql that builds
-- and plans the statement on every call. These two helpers have no callers left.
DROP FUNCTION outbox.pgmq_read_group_heads(text, integer, integer);
DROP FUNCTION outbox.pgmq_next_visible_at(text);
