-- What rating needs of every customer, at most $1 rows: as many as $1 back means there
-- may be more, too many to keep in memory.
SELECT msisdn, customer_id, plan, activated_on FROM customers LIMIT $1
