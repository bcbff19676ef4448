-- Credit-limit checks owed: one row per (customer, period) whose buckets or owed
-- adjustments changed since its thresholds were last evaluated. Written in the
-- transaction that made the change, so a check survives a crash, a rebalance or a
-- hand-over lost with its instance; deleted by whoever evaluated it, only if no commit
-- has marked it again since (`seq` is the marking transaction's id, never reused).
CREATE TABLE alert_checks (
    customer_id  BIGINT NOT NULL,
    period       DATE NOT NULL,
    seq          BIGINT NOT NULL,
    marked_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (customer_id, period)
);

-- Usage committed before this table existed is checked once by the running daemons.
INSERT INTO alert_checks (customer_id, period, seq, marked_at)
SELECT DISTINCT b.customer_id, b.period, pg_current_xact_id()::text::int8, now()
  FROM usage_buckets b
  LEFT JOIN billing_periods p ON p.period = b.period
 WHERE p.closed_at IS NULL;
