-- One customer as the API shows it.
SELECT customer_id, msisdn, name, plan, coalesce(region, 'unknown'), is_student,
       activated_on, credit_limit
  FROM customers
 WHERE customer_id = $1
