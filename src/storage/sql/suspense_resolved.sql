-- Mark suspense records resolved, each with how ($2: 'rated' when it became usage now,
-- 'duplicate' when it was usage already). The rows stay: explain_usage.sql shows an
-- event's bytes as received from its suspense row.
UPDATE suspense_records s SET resolved_at = now(), resolution = r.resolution
  FROM UNNEST($1::text[], $2::text[]) AS r (record_id, resolution)
 WHERE s.record_id = r.record_id
