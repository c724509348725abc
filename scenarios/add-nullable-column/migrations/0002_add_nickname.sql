-- A nullable column without a default: metadata only, old code unaffected.
ALTER TABLE customers ADD COLUMN nickname text;
