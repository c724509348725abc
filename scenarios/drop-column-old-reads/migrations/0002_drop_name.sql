-- The new code no longer reads `name`; the old code still does.
ALTER TABLE customers DROP COLUMN name;
