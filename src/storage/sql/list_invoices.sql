-- Invoices of period $1 and/or customer $2 (either NULL: any), in number order, at most
-- $3.
SELECT number, customer_id, period, currency, subtotal, vat, total, issued_at
  FROM invoices
 WHERE ($1::date IS NULL OR period = $1) AND ($2::int8 IS NULL OR customer_id = $2)
 ORDER BY seq
 LIMIT $3
