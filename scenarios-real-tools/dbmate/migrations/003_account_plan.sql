-- migrate:up
ALTER TABLE accounts ADD COLUMN plan text NOT NULL DEFAULT 'free';

-- migrate:down
ALTER TABLE accounts DROP COLUMN plan;
