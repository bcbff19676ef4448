-- Open suspense records whose subscriber is now a customer, locked so that two
-- resolvers (the daemon's and a `customers import`) never take the same row.
SELECT s.record_id, s.normalized, s.src_topic, s.src_partition, s.src_offset,
       c.customer_id, c.plan
  FROM suspense_records s
  JOIN customers c ON c.msisdn = s.msisdn
 WHERE s.resolved_at IS NULL AND s.record_id > $1
 ORDER BY s.record_id
 LIMIT $2
   FOR UPDATE OF s SKIP LOCKED
