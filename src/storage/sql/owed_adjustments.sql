-- The adjustments owed to these customers ($1) from periods before $2 and not billed
-- yet, each with its event's day in the operator's time zone ($3).
SELECT a.id, a.customer_id, a.kind, (u.event_time AT TIME ZONE $3)::date, a.delta
  FROM rating_adjustments a
  JOIN usage_events u ON u.record_id = a.record_id
 WHERE a.customer_id = ANY($1::int8[]) AND NOT a.in_place
   AND a.billed_on IS NULL AND a.period < $2
