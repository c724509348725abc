CREATE TABLE customers (
    id serial PRIMARY KEY,
    email text NOT NULL,
    name text
);

INSERT INTO customers (email, name)
SELECT format('user%s@example.com', i), format('User %s', i)
FROM generate_series(1, 200) AS i;
