-- Period $1 is invoiced: when it first was, and how many invoices it has now.
UPDATE billing_periods
   SET billed_at = COALESCE(billed_at, now()),
       invoices = (SELECT count(*) FROM invoices WHERE period = $1)
 WHERE period = $1
