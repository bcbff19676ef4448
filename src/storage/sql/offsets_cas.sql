-- Advance a partition's stored offset only if it is where the batch started: a batch
-- that lost the race (rebalance, replay rewind, zombie instance) updates nothing and
-- gets no row back. The row says up to where a `replay --rerate` asked for re-pricing,
-- and the oldest catalog version it may be done with.
UPDATE consumer_offsets
   SET next_offset = $4, updated_at = now()
 WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $5
RETURNING rerate_below, rerate_catalog_version
