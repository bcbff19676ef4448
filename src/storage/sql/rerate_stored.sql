-- What a re-priced event was: its stored price and period, what closed-period
-- adjustments already owe on it, and whether it arrived late (after its period was
-- closed: its stored price never reached an invoice, only its adjustments did). Whether
-- its period is closed is read when the period is locked (lock_periods.sql), not here.
SELECT u.record_id, u.customer_id, u.period, u.amount, u.catalog_version,
       COALESCE(a.owed, 0) AS owed, COALESCE(a.late, false) AS late
  FROM usage_events u
  LEFT JOIN LATERAL (SELECT sum(delta) AS owed, bool_or(kind = 'late') AS late
                       FROM rating_adjustments
                      WHERE record_id = u.record_id AND NOT in_place) a ON true
 WHERE u.record_id = ANY($1::text[])
