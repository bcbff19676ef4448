-- Add customers, or take the new plan, name and attributes of one whose MSISDN exists
-- (an import from the operator's CRM). A customer whose attributes are unchanged is not
-- written again: its `updated_at` stays, and it is not counted as updated. `added` tells
-- an insert (no previous row version: xmax = 0) from an update.
INSERT INTO customers (msisdn, name, plan, region, is_student, activated_on, credit_limit)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[],
                     $6::date[], $7::numeric[])
ON CONFLICT (msisdn) DO UPDATE
   SET name = EXCLUDED.name, plan = EXCLUDED.plan, region = EXCLUDED.region,
       is_student = EXCLUDED.is_student, activated_on = EXCLUDED.activated_on,
       credit_limit = EXCLUDED.credit_limit, updated_at = now()
 WHERE (customers.name, customers.plan, customers.region, customers.is_student,
        customers.activated_on, customers.credit_limit)
       IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.plan, EXCLUDED.region,
                         EXCLUDED.is_student, EXCLUDED.activated_on, EXCLUDED.credit_limit)
RETURNING (xmax = 0) AS added
