-- Keeps two `cdrflow bill` runs apart ($1: the key, BILL_LOCK), without waiting: true if
-- this session took the lock. Session-level, released by bill_unlock.sql.
SELECT pg_try_advisory_lock($1)
