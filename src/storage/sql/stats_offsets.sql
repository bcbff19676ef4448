-- The stored offset of every partition of group $1, on every topic.
SELECT topic, partition, next_offset FROM consumer_offsets WHERE group_id = $1
