-- outbox.expect: a condition a one-statement command writes under. A command that read
-- something in an earlier statement (or kept it from an earlier request) writes with
-- `WHERE outbox.expect(<what it read still holds>, <what changed>)`: if the condition no
-- longer holds when the write runs, the statement fails with SQLSTATE YH001 and changes
-- nothing, and the caller reads afresh and decides again (outbox.log.StaleRead). The check
-- sees the write's own snapshot, so it costs no round trip and takes no lock.
CREATE FUNCTION outbox.expect(holds boolean, what text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF holds IS NOT TRUE THEN
        RAISE EXCEPTION USING ERRCODE = 'YH001', MESSAGE = what;
    END IF;
    RETURN true;
END
$$;
