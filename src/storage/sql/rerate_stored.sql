-- What a re-priced event was: its stored price and period, whether that period is
-- closed, and what closed-period adjustments already owe on it.
SELECT u.record_id, u.customer_id, u.period, u.amount, u.catalog_version,
       (b.closed_at IS NOT NULL) AS closed,
       COALESCE((SELECT sum(a.delta) FROM rating_adjustments a
                  WHERE a.record_id = u.record_id AND NOT a.in_place), 0) AS owed
  FROM usage_events u
  LEFT JOIN billing_periods b ON b.period = u.period
 WHERE u.record_id = ANY($1::text[])
