-- Mark the credit-limit checks a transaction makes due: its (customer, period) pairs
-- ($1, $2: sorted, without repeats, so that concurrent writers lock them in one order),
-- and, for customers owed more from closed periods ($3), each of their open periods with
-- usage, whose estimate carries what is owed. `seq` is the transaction's id: a check read
-- before this commit can no longer be cleared, whoever read it.
INSERT INTO alert_checks AS a (customer_id, period, seq, marked_at)
SELECT k.customer_id, k.period, pg_current_xact_id()::text::int8, now()
  FROM (SELECT * FROM UNNEST($1::int8[], $2::date[])
        UNION
        SELECT DISTINCT b.customer_id, b.period FROM usage_buckets b
          LEFT JOIN billing_periods p ON p.period = b.period
         WHERE b.customer_id = ANY($3::int8[]) AND p.closed_at IS NULL
        ORDER BY 1, 2) AS k (customer_id, period)
ON CONFLICT (customer_id, period) DO UPDATE
   SET seq = EXCLUDED.seq, marked_at = EXCLUDED.marked_at
