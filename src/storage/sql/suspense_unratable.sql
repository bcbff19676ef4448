-- Suspense records whose subscriber exists but which the catalog cannot price: still
-- held, with why ($2).
UPDATE suspense_records s SET reason = r.reason
  FROM UNNEST($1::text[], $2::text[]) AS r (record_id, reason)
 WHERE s.record_id = r.record_id
