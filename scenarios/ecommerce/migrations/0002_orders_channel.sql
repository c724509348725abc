-- Pending: a nullable column with a default and an index on a big table.
ALTER TABLE orders ADD COLUMN channel text DEFAULT 'web';
CREATE INDEX orders_status_created_at_idx ON orders (status, created_at);
