-- The first usage event of period $1 (by record id) priced in more than one time band.
SELECT record_id FROM usage_events WHERE period = $1 AND cardinality(bands) > 1
 ORDER BY record_id LIMIT 1
