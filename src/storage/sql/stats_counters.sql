-- The outcome counters of group $1 (add_counters.sql), per partition, outcome and reject
-- reason.
SELECT topic, partition, outcome, reason, records FROM pipeline_counters WHERE group_id = $1
