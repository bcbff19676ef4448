-- A stored invoice's JSON document, as it was issued.
SELECT document FROM invoices WHERE number = $1
