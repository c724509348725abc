-- Two steps, as a hand-written migration often has them; the pause stands
-- for a slow backfill between them.
ALTER TABLE accounts ADD COLUMN plan text;
SELECT pg_sleep(0.3);
UPDATE accounts SET plan = 'free' WHERE plan IS NULL;
