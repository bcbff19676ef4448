-- The rows actually stored, counted independently of the counters: usage events, rejects,
-- suspense records (and those still held), unpriced usage, and the sum of every event's
-- amount.
SELECT u.n, (SELECT count(*) FROM rejected_records), s.n, s.held, u.unrated, u.amount
  FROM (SELECT count(*) AS n, count(*) FILTER (WHERE amount IS NULL) AS unrated,
               COALESCE(sum(amount), 0) AS amount
          FROM usage_events) u,
       (SELECT count(*) AS n, count(*) FILTER (WHERE resolved_at IS NULL) AS held
          FROM suspense_records) s
