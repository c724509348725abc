-- migrate:up
-- Fails on a non-empty table: NOT NULL without a default (23502).
ALTER TABLE accounts ADD COLUMN region text NOT NULL;

-- migrate:down
ALTER TABLE accounts DROP COLUMN region;
