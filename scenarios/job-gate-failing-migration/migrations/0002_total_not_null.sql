-- Fails: the column is called "total", not "amount".
ALTER TABLE orders ALTER COLUMN amount SET NOT NULL;
