-- Clear evaluated checks: each only if its `seq` is still the one read ($3), or
-- whatever it is when $3 is NULL (every threshold raised: nothing later can change the
-- outcome). A row a batch transaction holds is skipped, not waited for: that
-- transaction marks it again anyway, and waiting could deadlock with it.
WITH done AS (
    SELECT a.customer_id, a.period
      FROM UNNEST($1::int8[], $2::date[], $3::int8[]) AS k (customer_id, period, seq)
      JOIN alert_checks a ON a.customer_id = k.customer_id AND a.period = k.period
     WHERE k.seq IS NULL OR a.seq = k.seq
     ORDER BY 1, 2
       FOR UPDATE OF a SKIP LOCKED)
DELETE FROM alert_checks a USING done
 WHERE a.customer_id = done.customer_id AND a.period = done.period
