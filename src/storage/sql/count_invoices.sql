-- How many invoices period $1 has.
SELECT count(*) FROM invoices WHERE period = $1
