-- The subscribers with records of topic $1 still held in suspense, and how many each.
SELECT msisdn, count(*) FROM suspense_records
 WHERE resolved_at IS NULL AND src_topic = $1 GROUP BY msisdn ORDER BY msisdn
