-- A saga whose command was dead-lettered while nothing else would move it (compensating, or
-- running with no deadline) is marked PARKED, so it shows; parked_from keeps the status it
-- had, to go back to when an operator re-queues the command (outbox.parking).
ALTER TABLE saga.instance
    ADD COLUMN parked_from text
        CONSTRAINT instance_parked_from_check CHECK (parked_from IN ('RUNNING', 'COMPENSATING'));
