-- Release bill_lock.sql's lock. It goes with the connection anyway, but a pooled
-- connection outlives the run.
SELECT pg_advisory_unlock($1)
