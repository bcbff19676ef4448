-- Periods not invoiced yet whose grace of $1 days after their end has passed on $2.
SELECT period FROM billing_periods
 WHERE billed_at IS NULL
   AND (period + interval '1 month')::date + $1::int4 <= $2
 ORDER BY period
