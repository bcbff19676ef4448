-- Store credit-limit alerts. Each threshold is raised once per customer and period (the
-- unique key, across restarts and replays): one stored already is skipped, and only the
-- new ones come back, so only they are published.
INSERT INTO alerts (customer_id, period, threshold, amount, credit_limit, raised_at)
SELECT * FROM UNNEST($1::int8[], $2::date[], $3::int2[], $4::numeric[],
                     $5::numeric[], $6::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING customer_id, period, threshold
