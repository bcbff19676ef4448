INSERT INTO pipeline_counters (group_id, topic, partition, outcome, reason, records)
SELECT $1, $2, $3, c.outcome, c.reason, c.records
  FROM UNNEST($4::text[], $5::text[], $6::int8[]) AS c (outcome, reason, records)
ON CONFLICT (group_id, topic, partition, outcome, reason)
DO UPDATE SET records = pipeline_counters.records + EXCLUDED.records
