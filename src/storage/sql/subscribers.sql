-- What rating needs of the customers with these MSISDNs. Run for every batch as a
-- cached statement, so the list stays open to the unique index: an `OR $1 IS NULL`
-- folds away only in a plan made for the value, and a generic plan with it scans every
-- customer.
SELECT msisdn, customer_id, plan, activated_on
  FROM customers
 WHERE msisdn = ANY($1::text[])
