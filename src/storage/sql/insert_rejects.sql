INSERT INTO rejected_records (src_offset, reason, detail, raw, kafka_key, kafka_ts, src_topic, src_partition)
SELECT r.*, $7, $8
  FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::timestamptz[]) AS r
ON CONFLICT (src_topic, src_partition, src_offset) DO NOTHING
RETURNING src_offset
