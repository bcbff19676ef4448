-- Period $1's invoices by the customer's region, the largest total first.
SELECT c.region, count(*), sum(i.subtotal), sum(i.vat), sum(i.total)
  FROM invoices i JOIN customers c USING (customer_id)
 WHERE i.period = $1 GROUP BY 1 ORDER BY 5 DESC, 1
