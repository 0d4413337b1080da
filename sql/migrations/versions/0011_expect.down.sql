DROP FUNCTION outbox.expect(boolean, text);
