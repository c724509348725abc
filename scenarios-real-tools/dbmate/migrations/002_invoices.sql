-- migrate:up
-- Real migrations take a moment on real data; this one takes 0.2 s, so
-- replicas that start together overlap as they do in a deploy.
SELECT pg_sleep(0.2);
CREATE TABLE invoices (
    id bigserial PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts,
    total numeric NOT NULL
);

-- migrate:down
DROP TABLE invoices;
