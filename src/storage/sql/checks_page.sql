-- A page of checks left due for a while, for customers of one shard
-- (`customer_id mod $1 = $2`), after ($3, $4) in key order: the hand-over after a commit
-- normally clears a check within moments, so these are checks whose evaluator died or
-- failed. Younger ones are left to it.
SELECT customer_id, period FROM alert_checks
 WHERE customer_id % $1 = $2 AND (customer_id, period) > ($3, $4)
   AND marked_at < now() - make_interval(secs => $5)
 ORDER BY 1, 2 LIMIT $6
