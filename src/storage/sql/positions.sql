-- The stored offsets of a group on a topic with up to where a `replay --rerate` asked
-- for re-pricing, for the partitions in $3 (NULL: all).
SELECT partition, next_offset, rerate_below
  FROM consumer_offsets
 WHERE group_id = $1 AND topic = $2 AND ($3::int4[] IS NULL OR partition = ANY($3))
