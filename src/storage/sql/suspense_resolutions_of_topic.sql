-- How the suspense of topic $1 ended: rated, already stored as usage (duplicate), or
-- still held.
SELECT count(*) FILTER (WHERE resolution = 'rated'),
       count(*) FILTER (WHERE resolution = 'duplicate'),
       count(*) FILTER (WHERE resolved_at IS NULL)
  FROM suspense_records WHERE src_topic = $1
