-- The periods a batch writes into or prices again, locked FOR SHARE until it commits:
-- `cdrflow bill` closes a period with an UPDATE of its row, which waits for every batch
-- that saw the period open, so no usage enters a period's buckets, and no event of it is
-- priced again in place, after it is closed.
SELECT period, closed_at IS NOT NULL AS closed
  FROM billing_periods
 WHERE period = ANY($1::date[])
   FOR SHARE
