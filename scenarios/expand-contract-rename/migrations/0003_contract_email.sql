-- Contract, once no old code runs: the old column and the trigger go.
DROP TRIGGER customers_sync_email ON customers;
DROP FUNCTION customers_sync_email();
ALTER TABLE customers DROP COLUMN email;
ALTER TABLE customers ALTER COLUMN email_address SET NOT NULL;
