-- Move a partition's stored offset over a range the broker no longer has, and record the
-- range, in one statement: only if the offset is still where the gap starts (a replay or
-- another instance may have moved it), so a gap is recorded once and never skipped twice.
WITH moved AS (
    UPDATE consumer_offsets
       SET next_offset = $5, updated_at = now()
     WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $4
    RETURNING group_id, topic, partition
)
INSERT INTO offset_gaps (group_id, topic, partition, from_offset, to_offset)
SELECT group_id, topic, partition, $4, $5 FROM moved
