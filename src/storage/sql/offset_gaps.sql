-- Every gap recorded for group $1 (records the broker deleted before the group read
-- them), oldest offset first.
SELECT topic, partition, from_offset, to_offset, detected_at
  FROM offset_gaps
 WHERE group_id = $1
 ORDER BY topic, partition, from_offset
