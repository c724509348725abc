-- A data migration. The sleep stands for the time a real backfill takes:
-- long enough that every replica reads the bookkeeping before the first
-- one commits, which is when runners without a lock apply it again.
SELECT pg_sleep(0.3);
INSERT INTO plans (name) VALUES ('free');
