-- Close period $1, unless it is closed already (one row changed: this call closed it).
-- The UPDATE waits for every batch that holds the row FOR SHARE (lock_periods.sql), that
-- is every batch that saw the period open, to commit.
UPDATE billing_periods SET closed_at = now() WHERE period = $1 AND closed_at IS NULL
