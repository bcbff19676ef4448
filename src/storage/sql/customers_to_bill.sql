-- The next customers (by id, after $3) to invoice for period $1 (ending $2): active in
-- the period, or with usage or owed adjustments to bill, and not invoiced yet.
SELECT c.customer_id
  FROM customers c
 WHERE c.customer_id > $3
   AND (c.activated_on <= $2
        OR EXISTS (SELECT 1 FROM usage_buckets b WHERE b.customer_id = c.customer_id AND b.period = $1)
        OR EXISTS (SELECT 1 FROM rating_adjustments a
                    WHERE a.customer_id = c.customer_id AND NOT a.in_place
                      AND a.billed_on IS NULL AND a.period < $1))
   AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.customer_id = c.customer_id AND i.period = $1)
 ORDER BY c.customer_id
 LIMIT $4
