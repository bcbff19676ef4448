-- The stored offsets of a group on a topic, for the partitions in $3 (NULL: all).
SELECT partition, next_offset
  FROM consumer_offsets
 WHERE group_id = $1 AND topic = $2 AND ($3::int4[] IS NULL OR partition = ANY($3))
