-- Give each of these periods a `billing_periods` row if it has none yet, so that
-- lock_periods.sql can lock it. A row someone else added in the meantime is left as it is.
INSERT INTO billing_periods (period)
SELECT unnest($1::date[])
ON CONFLICT DO NOTHING
