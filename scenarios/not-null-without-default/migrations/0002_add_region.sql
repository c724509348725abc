-- Existing rows get 'eu'; afterwards the column has no default, so an
-- INSERT that does not name it fails with 23502.
ALTER TABLE customers ADD COLUMN region text NOT NULL DEFAULT 'eu';
ALTER TABLE customers ALTER COLUMN region DROP DEFAULT;
