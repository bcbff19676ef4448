-- Give period $1 a `billing_periods` row if it has none yet, in a statement of its own
-- before close_period.sql: from then on every batch writing into the period locks the
-- row (lock_periods.sql).
INSERT INTO billing_periods (period) VALUES ($1) ON CONFLICT DO NOTHING
