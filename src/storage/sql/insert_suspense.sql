INSERT INTO suspense_records (record_id, msisdn, event_time, normalized, raw, src_offset, reason, src_topic, src_partition)
SELECT s.*, $8, $9
  FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::jsonb[], $5::bytea[], $6::int8[], $7::text[]) AS s
ON CONFLICT (record_id) DO NOTHING
RETURNING record_id
