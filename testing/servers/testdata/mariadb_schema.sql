-- The schema every test database of mariadb_test starts with.
CREATE TABLE customers (
  id INT PRIMARY KEY,
  name VARCHAR(40) NOT NULL  -- a comment; with a semicolon
);
/* rows; two */
INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace; Hopper');
