"""Event log (outbox), relay, pgmq broker for Dramatiq, transactional consumers, sagas."""
