-- Pending: a nullable column and an index on the largest table.
ALTER TABLE events ADD COLUMN source text;
CREATE INDEX events_kind_idx ON events (kind);
