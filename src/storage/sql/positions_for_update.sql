-- positions.sql, with the rows locked until the caller's transaction ends (a replay
-- about to rewind them): a daemon committing a batch of one of them waits, and then
-- finds the offset it expected gone. Locked in partition order, so that two such callers
-- cannot deadlock.
SELECT partition, next_offset, rerate_below
  FROM consumer_offsets
 WHERE group_id = $1 AND topic = $2 AND ($3::int4[] IS NULL OR partition = ANY($3))
 ORDER BY partition
   FOR UPDATE
