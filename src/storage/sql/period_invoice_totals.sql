-- Period $1's invoices: how many, the first and last sequence numbers, and their sums.
SELECT count(*), min(seq), max(seq), COALESCE(sum(subtotal), 0),
       COALESCE(sum(vat), 0), COALESCE(sum(total), 0)
  FROM invoices WHERE period = $1
