-- Give each of these partitions ($3) of a group and topic a stored offset of 0 if it has
-- none yet, so that every later batch commit is a plain compare-and-set
-- (offsets_cas.sql). A row that exists keeps its offset.
INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)
SELECT $1, $2, p, 0 FROM UNNEST($3::int4[]) AS p
ON CONFLICT DO NOTHING
