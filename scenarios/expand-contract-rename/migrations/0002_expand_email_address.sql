-- Expand: the new column, backfilled, kept in sync with the old one by a
-- trigger whichever code writes.
ALTER TABLE customers ADD COLUMN email_address text;
UPDATE customers SET email_address = email;

CREATE FUNCTION customers_sync_email() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.email := coalesce(NEW.email, NEW.email_address);
    NEW.email_address := coalesce(NEW.email_address, NEW.email);
    RETURN NEW;
END $$;

CREATE TRIGGER customers_sync_email BEFORE INSERT OR UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION customers_sync_email();
