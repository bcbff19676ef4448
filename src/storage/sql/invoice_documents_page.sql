-- The next page of period $1's stored invoice documents, in issue order after seq $2.
SELECT seq, number, document FROM invoices WHERE period = $1 AND seq > $2
 ORDER BY seq LIMIT 1000
