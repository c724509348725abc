-- migrate:up
CREATE TABLE invoices (
    id bigserial PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts,
    total numeric NOT NULL
);

-- migrate:down
DROP TABLE invoices;
