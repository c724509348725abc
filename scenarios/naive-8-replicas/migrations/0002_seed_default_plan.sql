-- no-transaction
-- A data migration. The sleep stands for the time a real backfill takes:
-- long enough that every replica reads the bookkeeping before the first
-- one records it, which is when runners without a lock apply it again
-- (outside a transaction, so the copies commit).
SELECT pg_sleep(0.3);
INSERT INTO plans (name) VALUES ('free');
