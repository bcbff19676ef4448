-- The suspense row that still holds an event, for `cdrflow explain`; a resolved one is
-- usage by now and explained as such.
SELECT reason, raw, normalized, src_topic, src_partition, src_offset, created_at
  FROM suspense_records
 WHERE record_id = $1 AND resolved_at IS NULL
