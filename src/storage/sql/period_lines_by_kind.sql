-- Period $1's invoice lines by kind: how many, and their sum.
SELECT l.kind, count(*), sum(l.amount)
  FROM invoice_lines l JOIN invoices i USING (number)
 WHERE i.period = $1 GROUP BY 1
