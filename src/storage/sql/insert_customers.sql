-- Add customers; one whose MSISDN exists already is left as it is (a generated pool run
-- again never changes real data). Returns a row per customer added, the shape of
-- upsert_customers.sql's.
INSERT INTO customers (msisdn, name, plan, region, is_student, activated_on, credit_limit)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[],
                     $6::date[], $7::numeric[])
ON CONFLICT (msisdn) DO NOTHING
RETURNING (xmax = 0) AS added
