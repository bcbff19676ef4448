-- Take the next $1 invoice numbers: the last one comes back. The row stays locked until
-- the transaction that stores the invoices commits, so numbers are gap-free: a run that
-- fails gives its numbers back with its rollback.
UPDATE invoice_sequence SET last_value = last_value + $1
 WHERE series = 'invoice'
RETURNING last_value
