-- The batches group $1 committed from topic $2: how many, their records, and the first
-- and last commit times.
SELECT count(*), COALESCE(sum(records), 0)::int8, min(committed_at), max(committed_at)
  FROM committed_batches WHERE group_id = $1 AND topic = $2
