-- Held while migrations run: refinery takes no lock of its own, and two instances
-- starting together must not both apply the same migration. Session-level, so it is
-- released by migrate_unlock.sql (or when the connection ends).
SELECT pg_advisory_lock(7243101)
