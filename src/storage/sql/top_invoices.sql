-- Period $1's ten largest invoices with their customers; ties in issue order.
SELECT i.number, i.customer_id, c.name, c.plan, c.region, i.total
  FROM invoices i JOIN customers c USING (customer_id)
 WHERE i.period = $1 ORDER BY i.total DESC, i.seq LIMIT 10
