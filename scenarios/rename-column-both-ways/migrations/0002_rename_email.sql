-- A rename in one step: whichever code runs on the other schema breaks.
ALTER TABLE customers RENAME COLUMN email TO email_address;
