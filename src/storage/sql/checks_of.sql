-- The checks due for these customers.
SELECT customer_id, period FROM alert_checks WHERE customer_id = ANY($1::int8[])
 ORDER BY 1, 2
