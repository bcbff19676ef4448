-- The accounts of some customers, by id: who their invoice is for and their credit
-- limit. No `OR $1 IS NULL`: once the cached statement gets a generic plan, that would
-- scan every customer.
SELECT customer_id, name, msisdn, plan, region, is_student, activated_on, credit_limit
  FROM customers
 WHERE customer_id = ANY($1::int8[])
