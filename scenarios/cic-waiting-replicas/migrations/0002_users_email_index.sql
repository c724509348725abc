-- no-transaction
-- CREATE INDEX CONCURRENTLY waits for every transaction with an older
-- snapshot. Replicas waiting in `SELECT pg_advisory_lock(...)` hold one, and
-- wait for the lock the index builder holds: a cycle. The pause stands for
-- the earlier steps of a real migration; it lets every replica reach the
-- lock before the index build starts.
SELECT pg_sleep(0.3);
CREATE INDEX CONCURRENTLY users_email_idx ON users (email);
