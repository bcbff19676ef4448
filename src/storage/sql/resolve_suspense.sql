-- Open suspense records whose subscriber is now a customer, locked so that two
-- resolvers (the daemon's and a `customers import`) never take the same row. An event
-- held as dated before its subscriber's activation comes back only once the activation
-- date is no later than the event's day in the operator's zone ($3).
SELECT s.record_id, s.normalized, s.src_topic, s.src_partition, s.src_offset,
       c.customer_id, c.plan, c.activated_on
  FROM suspense_records s
  JOIN customers c ON c.msisdn = s.msisdn
 WHERE s.resolved_at IS NULL AND s.record_id > $1
   AND (s.reason IS DISTINCT FROM 'before_activation'
        OR c.activated_on <= (s.event_time AT TIME ZONE $3)::date)
 ORDER BY s.record_id
 LIMIT $2
   FOR UPDATE OF s SKIP LOCKED
