-- The checks still due among these (customer, period) pairs, each with what deciding it
-- takes: the account, the gross amount of the buckets, the thresholds raised, and the
-- positive adjustments owed from earlier closed periods (an upper bound of what they add
-- to this period's invoice). One statement, so `seq` and the sums come from one snapshot:
-- the sums hold at least the commit that set `seq`.
-- Each pair is read by key (LATERAL, kept apart by OFFSET 0): left to the planner, a call
-- with a few thousand pairs was planned as a hash join over every customer, which cost
-- three times as much per pair as the index look-ups.
SELECT k.customer_id, k.period, m.seq, c.name, c.msisdn, c.plan, c.region, c.is_student,
       c.activated_on, c.credit_limit,
       (SELECT COALESCE(sum(b.amount + b.extra), 0) FROM usage_buckets b
         WHERE b.customer_id = k.customer_id AND b.period = k.period) AS gross,
       ARRAY(SELECT a.threshold FROM alerts a
              WHERE a.customer_id = k.customer_id AND a.period = k.period) AS raised,
       (SELECT COALESCE(sum(GREATEST(r.delta, 0)), 0) FROM rating_adjustments r
         WHERE r.customer_id = k.customer_id AND NOT r.in_place AND r.billed_on IS NULL
           AND r.period < k.period) AS owed_at_most
  FROM UNNEST($1::int8[], $2::date[]) AS k (customer_id, period)
  CROSS JOIN LATERAL (SELECT seq FROM alert_checks a
                       WHERE a.customer_id = k.customer_id AND a.period = k.period OFFSET 0) m
  CROSS JOIN LATERAL (SELECT * FROM customers c WHERE c.customer_id = k.customer_id OFFSET 0) c
