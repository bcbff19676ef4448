-- A customer's rated events of billing period $2 (when NULL: the latest with usage),
-- newest first, at most $3.
SELECT record_id, event_time, record_type, peer_msisdn, duration_sec, volume_bytes,
       zone, band, units, amount, region, technology, roaming_country, period
  FROM usage_events
 WHERE customer_id = $1
   AND period = coalesce($2, (SELECT max(period) FROM usage_events WHERE customer_id = $1))
 ORDER BY event_time DESC, record_id
 LIMIT $3
