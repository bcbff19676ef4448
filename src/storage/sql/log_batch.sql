INSERT INTO committed_batches (group_id, topic, partition, from_offset, to_offset, records, accepted, duplicates, suspense, rejected, unverified_peers)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
