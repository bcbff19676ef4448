-- Release the lock of migrate_lock.sql once the migrations have run.
SELECT pg_advisory_unlock(7243101)
