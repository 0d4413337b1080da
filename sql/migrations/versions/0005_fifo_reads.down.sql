DROP FUNCTION outbox.pgmq_read_group_heads(text, integer, integer);
DROP FUNCTION outbox.pgmq_ensure_group_index(text);
