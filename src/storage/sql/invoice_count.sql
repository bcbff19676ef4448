-- The invoices issued for period $1.
SELECT count(*) FROM invoices WHERE period = $1
