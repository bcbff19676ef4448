-- Reports: materialized aggregates over usage, invoices and the pipeline's audit trail,
-- and one function per report (with a view of the unfiltered answer for psql and
-- Grafana). docs/reports.md defines every column.
--
-- Why materialized: a year of usage is tens of millions of rows, and a report must answer
-- in well under a second. The aggregates below are small (thousands of rows per month,
-- or one per customer and month) and are refreshed together by report_refresh(), which
-- the daemon calls on a timer and `cdrflow bill` after invoicing. REFRESH ...
-- CONCURRENTLY keeps them readable meanwhile; it needs the unique indexes.

-- When the aggregates were last refreshed, and how long it took.
CREATE TABLE report_refreshes (
    id            BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    refreshed_at  TIMESTAMPTZ NOT NULL,
    seconds       NUMERIC(10, 3) NOT NULL,
    timezone      TEXT NOT NULL
);

-- Per customer, month and service (service NULL: all services together).
CREATE MATERIALIZED VIEW report_customer_usage_mv AS
SELECT period, customer_id, record_type AS service,
       count(*)::bigint AS events, sum(units)::bigint AS units,
       sum(amount) AS rated, sum(cost) AS cost, max(event_time) AS last_event
  FROM usage_events
 WHERE amount IS NOT NULL
 GROUP BY GROUPING SETS ((period, customer_id, record_type), (period, customer_id));
CREATE UNIQUE INDEX report_customer_usage_mv_key
    ON report_customer_usage_mv (period, customer_id, service) NULLS NOT DISTINCT;
CREATE INDEX report_customer_usage_mv_top
    ON report_customer_usage_mv (period, service, rated DESC);

-- Per month, home region, plan and service (NULL: all services). `customers` adds up
-- across regions and plans (a customer has one of each), never across services.
CREATE MATERIALIZED VIEW report_segment_mv AS
SELECT u.period, coalesce(c.region, 'unknown') AS region, c.plan, u.service,
       count(*)::bigint AS customers, sum(u.events)::bigint AS events,
       sum(u.units)::bigint AS units, sum(u.rated) AS rated, sum(u.cost) AS cost
  FROM report_customer_usage_mv u
  JOIN customers c USING (customer_id)
 GROUP BY u.period, coalesce(c.region, 'unknown'), c.plan, u.service;
CREATE UNIQUE INDEX report_segment_mv_key
    ON report_segment_mv (period, region, plan, service) NULLS NOT DISTINCT;

-- Per month, region, plan, service and zone: profitability.
CREATE MATERIALIZED VIEW report_zone_mv AS
SELECT e.period, coalesce(c.region, 'unknown') AS region, c.plan,
       e.record_type AS service, e.zone,
       count(*)::bigint AS events, sum(e.units)::bigint AS units,
       sum(e.amount) AS rated, sum(e.cost) AS cost
  FROM usage_events e
  JOIN customers c USING (customer_id)
 WHERE e.amount IS NOT NULL
 GROUP BY 1, 2, 3, 4, 5;
CREATE UNIQUE INDEX report_zone_mv_key
    ON report_zone_mv (period, region, plan, service, zone) NULLS NOT DISTINCT;

-- Per month, region, service, technology, ISO weekday and hour (operator time zone:
-- report_refresh sets it before refreshing).
CREATE MATERIALIZED VIEW report_hourly_mv AS
SELECT e.period, coalesce(c.region, 'unknown') AS region, e.record_type AS service,
       e.technology,
       extract(isodow FROM e.event_time)::int AS weekday,
       extract(hour FROM e.event_time)::int AS hour,
       count(*)::bigint AS events, sum(e.units)::bigint AS units, sum(e.amount) AS rated
  FROM usage_events e
  JOIN customers c USING (customer_id)
 WHERE e.amount IS NOT NULL
 GROUP BY 1, 2, 3, 4, 5, 6;
CREATE UNIQUE INDEX report_hourly_mv_key
    ON report_hourly_mv (period, region, service, technology, weekday, hour);

-- Issued invoices per month, region and plan: whole invoices (service NULL: subtotal
-- and total) and, per service, the lines of that service (usage and allowance credits).
CREATE MATERIALIZED VIEW report_billed_mv AS
SELECT i.period, coalesce(c.region, 'unknown') AS region, c.plan, NULL::text AS service,
       count(*)::bigint AS invoices, sum(i.subtotal) AS billed, sum(i.total) AS billed_total
  FROM invoices i
  JOIN customers c USING (customer_id)
 GROUP BY 1, 2, 3
UNION ALL
SELECT i.period, coalesce(c.region, 'unknown'), c.plan, l.service,
       count(DISTINCT i.number)::bigint, sum(l.amount), NULL
  FROM invoice_lines l
  JOIN invoices i USING (number)
  JOIN customers c USING (customer_id)
 WHERE l.service IS NOT NULL
 GROUP BY 1, 2, 3, 4;
CREATE UNIQUE INDEX report_billed_mv_key
    ON report_billed_mv (period, region, plan, service) NULLS NOT DISTINCT;

-- Per processing day (operator time zone): what the committers did, from the audit
-- trail of committed batches (a replayed range counts again: it was processed again).
CREATE MATERIALIZED VIEW report_quality_mv AS
SELECT committed_at::date AS day,
       sum(records)::bigint AS consumed, sum(accepted)::bigint AS accepted,
       sum(duplicates)::bigint AS duplicates, sum(suspense)::bigint AS suspense,
       sum(rejected)::bigint AS rejected
  FROM committed_batches
 GROUP BY 1;
CREATE UNIQUE INDEX report_quality_mv_key ON report_quality_mv (day);

CREATE MATERIALIZED VIEW report_rejects_mv AS
SELECT rejected_at::date AS day, reason, count(*)::bigint AS records
  FROM rejected_records
 GROUP BY 1, 2;
CREATE UNIQUE INDEX report_rejects_mv_key ON report_rejects_mv (day, reason);

-- RFM per month over a window of that month and the two before, for every customer
-- activated by the month's end. Scores are quintiles by rank, 1 + floor(5 × percent_rank)
-- capped at 5, so equal values share the lower score and no usage scores 1.
CREATE MATERIALIZED VIEW report_rfm_mv AS
WITH periods AS (
    SELECT DISTINCT period FROM report_customer_usage_mv
), win AS (
    SELECT p.period, u.customer_id, max(u.last_event) AS last_event,
           sum(u.events)::bigint AS frequency, sum(u.rated) AS monetary
      FROM periods p
      JOIN report_customer_usage_mv u
        ON u.service IS NULL
       AND u.period BETWEEN (p.period - interval '2 months')::date AND p.period
     GROUP BY p.period, u.customer_id
), base AS (
    SELECT p.period, c.customer_id, w.last_event,
           coalesce(w.frequency, 0) AS frequency, coalesce(w.monetary, 0) AS monetary,
           -- Whole days; an event a little ahead of the clock counts as today. No usage
           -- in the window: NULL (greatest() alone would make it 0, the best recency).
           CASE WHEN w.last_event IS NOT NULL
                THEN greatest(0, floor(extract(epoch FROM least(p.period + interval '1 month', now())
                                                        - w.last_event) / 86400))::int
           END AS recency_days
      FROM periods p
      JOIN customers c ON c.activated_on < p.period + interval '1 month'
      LEFT JOIN win w ON w.period = p.period AND w.customer_id = c.customer_id
), scored AS (
    SELECT b.*,
           least(5, 1 + floor(5 * percent_rank() OVER (PARTITION BY period
                 ORDER BY -coalesce(recency_days, 2147483647)::bigint)))::int AS r,
           least(5, 1 + floor(5 * percent_rank() OVER (PARTITION BY period
                 ORDER BY frequency)))::int AS f,
           least(5, 1 + floor(5 * percent_rank() OVER (PARTITION BY period
                 ORDER BY monetary)))::int AS m
      FROM base b
)
SELECT s.*,
       CASE WHEN r >= 4 AND f >= 4 AND m >= 4 THEN 'champions'
            WHEN f >= 4 AND m >= 3 THEN 'loyal'
            WHEN r >= 4 AND f <= 2 THEN 'new'
            WHEN r >= 3 THEN 'promising'
            WHEN r <= 2 AND f >= 3 THEN 'at risk'
            WHEN r <= 2 AND f = 2 THEN 'hibernating'
            ELSE 'lost' END AS segment
  FROM scored s;
CREATE UNIQUE INDEX report_rfm_mv_key ON report_rfm_mv (period, customer_id);
CREATE INDEX report_rfm_mv_monetary ON report_rfm_mv (period, monetary DESC);

-- Refresh every aggregate, in dependency order, in the operator's time zone.
CREATE FUNCTION report_refresh(tz TEXT) RETURNS NUMERIC LANGUAGE plpgsql AS $$
DECLARE
    started TIMESTAMPTZ := clock_timestamp();
    took NUMERIC;
BEGIN
    PERFORM set_config('TimeZone', tz, true);
    REFRESH MATERIALIZED VIEW CONCURRENTLY report_customer_usage_mv;
    REFRESH MATERIALIZED VIEW CONCURRENTLY report_segment_mv;
    REFRESH MATERIALIZED VIEW CONCURRENTLY report_zone_mv;
    REFRESH MATERIALIZED VIEW CONCURRENTLY report_hourly_mv;
    REFRESH MATERIALIZED VIEW CONCURRENTLY report_billed_mv;
    REFRESH MATERIALIZED VIEW CONCURRENTLY report_quality_mv;
    REFRESH MATERIALIZED VIEW CONCURRENTLY report_rejects_mv;
    REFRESH MATERIALIZED VIEW CONCURRENTLY report_rfm_mv;
    took := round(extract(epoch FROM clock_timestamp() - started)::numeric, 3);
    INSERT INTO report_refreshes (refreshed_at, seconds, timezone)
    VALUES (clock_timestamp(), took, tz)
    ON CONFLICT (id) DO UPDATE
       SET refreshed_at = EXCLUDED.refreshed_at, seconds = EXCLUDED.seconds,
           timezone = EXCLUDED.timezone;
    RETURN took;
END $$;

CREATE FUNCTION report_latest_period() RETURNS DATE LANGUAGE sql STABLE AS $$
    SELECT max(period) FROM report_segment_mv
$$;

-- Every report function takes the same arguments (NULL: no filter); the registry in
-- src/storage/reports.rs says which of them each report accepts.

CREATE FUNCTION report_kpis(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (period DATE, rated NUMERIC, cost NUMERIC, customers BIGINT, events BIGINT,
               invoices BIGINT, billed NUMERIC, billed_total NUMERIC,
               average_invoice NUMERIC, records_consumed BIGINT, records_rejected BIGINT,
               reject_rate_pct NUMERIC)
LANGUAGE sql STABLE AS $$
    WITH p AS (SELECT coalesce(p_period, report_latest_period()) AS period),
    u AS (
        SELECT sum(s.rated) AS rated, sum(s.cost) AS cost,
               sum(s.customers)::bigint AS customers, sum(s.events)::bigint AS events
          FROM report_segment_mv s, p
         WHERE s.period = p.period AND s.service IS NOT DISTINCT FROM p_service
           AND (p_region IS NULL OR s.region = p_region)
           AND (p_plan IS NULL OR s.plan = p_plan)
    ), b AS (
        SELECT sum(b.invoices)::bigint AS invoices, sum(b.billed) AS billed,
               sum(b.billed_total) AS billed_total,
               sum(b.invoices) FILTER (WHERE b.service IS NULL) AS whole
          FROM report_billed_mv b, p
         WHERE b.period = p.period AND b.service IS NOT DISTINCT FROM p_service
           AND (p_region IS NULL OR b.region = p_region)
           AND (p_plan IS NULL OR b.plan = p_plan)
    ), q AS (
        -- Since the start: records are counted by the day they were processed, which is
        -- not their billing month (last month's usage is processed this month).
        SELECT sum(q.consumed)::bigint AS consumed, sum(q.rejected)::bigint AS rejected
          FROM report_quality_mv q
    )
    SELECT p.period, coalesce(u.rated, 0), coalesce(u.cost, 0), coalesce(u.customers, 0),
           coalesce(u.events, 0), coalesce(b.invoices, 0), b.billed, b.billed_total,
           CASE WHEN b.whole > 0 THEN round(b.billed_total / b.whole, 2) END,
           coalesce(q.consumed, 0), coalesce(q.rejected, 0),
           CASE WHEN q.consumed > 0 THEN round(100.0 * q.rejected / q.consumed, 2) END
      FROM p, u, b, q
$$;

CREATE FUNCTION report_revenue_by_month(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (period DATE, customers BIGINT, events BIGINT, rated NUMERIC, cost NUMERIC,
               margin NUMERIC, margin_pct NUMERIC, invoices BIGINT, billed NUMERIC,
               billed_total NUMERIC)
LANGUAGE sql STABLE AS $$
    WITH u AS (
        SELECT s.period, sum(s.customers)::bigint AS customers, sum(s.events)::bigint AS events,
               sum(s.rated) AS rated, sum(s.cost) AS cost
          FROM report_segment_mv s
         WHERE (p_period IS NULL OR s.period = p_period)
           AND s.service IS NOT DISTINCT FROM p_service
           AND (p_region IS NULL OR s.region = p_region)
           AND (p_plan IS NULL OR s.plan = p_plan)
         GROUP BY s.period
    ), b AS (
        SELECT b.period, sum(b.invoices)::bigint AS invoices, sum(b.billed) AS billed,
               sum(b.billed_total) AS billed_total
          FROM report_billed_mv b
         WHERE (p_period IS NULL OR b.period = p_period)
           AND b.service IS NOT DISTINCT FROM p_service
           AND (p_region IS NULL OR b.region = p_region)
           AND (p_plan IS NULL OR b.plan = p_plan)
         GROUP BY b.period
    )
    SELECT coalesce(u.period, b.period), coalesce(u.customers, 0), coalesce(u.events, 0),
           coalesce(u.rated, 0), coalesce(u.cost, 0), coalesce(u.rated - u.cost, 0),
           CASE WHEN u.rated > 0 THEN round(100 * (u.rated - u.cost) / u.rated, 2) END,
           coalesce(b.invoices, 0), b.billed, b.billed_total
      FROM u FULL JOIN b ON b.period = u.period
     ORDER BY 1
$$;

CREATE FUNCTION report_revenue_by_service(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (service TEXT, customers BIGINT, events BIGINT, units BIGINT, rated NUMERIC,
               cost NUMERIC, margin NUMERIC, margin_pct NUMERIC, share_pct NUMERIC)
LANGUAGE sql STABLE AS $$
    WITH u AS (
        SELECT s.service, sum(s.customers)::bigint AS customers, sum(s.events)::bigint AS events,
               sum(s.units)::bigint AS units, sum(s.rated) AS rated, sum(s.cost) AS cost
          FROM report_segment_mv s
         WHERE s.service IS NOT NULL
           AND s.period = coalesce(p_period, report_latest_period())
           AND (p_region IS NULL OR s.region = p_region)
           AND (p_plan IS NULL OR s.plan = p_plan)
         GROUP BY s.service
    )
    SELECT u.service, u.customers, u.events, u.units, u.rated, u.cost, u.rated - u.cost,
           CASE WHEN u.rated > 0 THEN round(100 * (u.rated - u.cost) / u.rated, 2) END,
           CASE WHEN sum(u.rated) OVER () > 0
                THEN round(100 * u.rated / sum(u.rated) OVER (), 2) END
      FROM u
     ORDER BY u.rated DESC, u.service
$$;

CREATE FUNCTION report_revenue_by_region(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (region TEXT, customers BIGINT, events BIGINT, rated NUMERIC, arpu NUMERIC,
               share_pct NUMERIC, invoices BIGINT, billed NUMERIC)
LANGUAGE sql STABLE AS $$
    WITH p AS (SELECT coalesce(p_period, report_latest_period()) AS period),
    u AS (
        SELECT s.region, sum(s.customers)::bigint AS customers, sum(s.events)::bigint AS events,
               sum(s.rated) AS rated
          FROM report_segment_mv s, p
         WHERE s.period = p.period AND s.service IS NOT DISTINCT FROM p_service
           AND (p_plan IS NULL OR s.plan = p_plan)
         GROUP BY s.region
    ), b AS (
        SELECT b.region, sum(b.invoices)::bigint AS invoices, sum(b.billed) AS billed
          FROM report_billed_mv b, p
         WHERE b.period = p.period AND b.service IS NOT DISTINCT FROM p_service
           AND (p_plan IS NULL OR b.plan = p_plan)
         GROUP BY b.region
    )
    SELECT u.region, u.customers, u.events, u.rated,
           CASE WHEN u.customers > 0 THEN round(u.rated / u.customers, 2) END,
           CASE WHEN sum(u.rated) OVER () > 0
                THEN round(100 * u.rated / sum(u.rated) OVER (), 2) END,
           coalesce(b.invoices, 0), b.billed
      FROM u LEFT JOIN b USING (region)
     ORDER BY u.rated DESC, u.region
$$;

CREATE FUNCTION report_revenue_by_region_month(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (period DATE, region TEXT, customers BIGINT, rated NUMERIC, arpu NUMERIC)
LANGUAGE sql STABLE AS $$
    SELECT s.period, s.region, sum(s.customers)::bigint, sum(s.rated),
           CASE WHEN sum(s.customers) > 0 THEN round(sum(s.rated) / sum(s.customers), 2) END
      FROM report_segment_mv s
     WHERE (p_period IS NULL OR s.period = p_period)
       AND s.service IS NOT DISTINCT FROM p_service
       AND (p_plan IS NULL OR s.plan = p_plan)
     GROUP BY s.period, s.region
     ORDER BY s.period, s.region
$$;

CREATE FUNCTION report_revenue_by_plan(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (plan TEXT, customers BIGINT, events BIGINT, rated NUMERIC, arpu NUMERIC,
               invoices BIGINT, billed NUMERIC)
LANGUAGE sql STABLE AS $$
    WITH p AS (SELECT coalesce(p_period, report_latest_period()) AS period),
    u AS (
        SELECT s.plan, sum(s.customers)::bigint AS customers, sum(s.events)::bigint AS events,
               sum(s.rated) AS rated
          FROM report_segment_mv s, p
         WHERE s.period = p.period AND s.service IS NOT DISTINCT FROM p_service
           AND (p_region IS NULL OR s.region = p_region)
         GROUP BY s.plan
    ), b AS (
        SELECT b.plan, sum(b.invoices)::bigint AS invoices, sum(b.billed) AS billed
          FROM report_billed_mv b, p
         WHERE b.period = p.period AND b.service IS NOT DISTINCT FROM p_service
           AND (p_region IS NULL OR b.region = p_region)
         GROUP BY b.plan
    )
    SELECT u.plan, u.customers, u.events, u.rated,
           CASE WHEN u.customers > 0 THEN round(u.rated / u.customers, 2) END,
           coalesce(b.invoices, 0), b.billed
      FROM u LEFT JOIN b USING (plan)
     ORDER BY u.rated DESC, u.plan
$$;

CREATE FUNCTION report_arpu(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (period DATE, customers BIGINT, rated NUMERIC, arpu NUMERIC, invoices BIGINT,
               billed NUMERIC, billed_arpu NUMERIC)
LANGUAGE sql STABLE AS $$
    SELECT m.period, m.customers, m.rated,
           CASE WHEN m.customers > 0 THEN round(m.rated / m.customers, 2) END,
           m.invoices, m.billed,
           CASE WHEN m.invoices > 0 THEN round(m.billed / m.invoices, 2) END
      FROM report_revenue_by_month(p_period, p_service, p_region, p_plan, p_limit) m
     ORDER BY m.period
$$;

CREATE FUNCTION report_top_customers(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (customer_id BIGINT, name TEXT, msisdn TEXT, region TEXT, plan TEXT,
               events BIGINT, rated NUMERIC, cost NUMERIC)
LANGUAGE sql STABLE AS $$
    SELECT u.customer_id, c.name, c.msisdn, coalesce(c.region, 'unknown'), c.plan,
           u.events, u.rated, u.cost
      FROM report_customer_usage_mv u
      JOIN customers c USING (customer_id)
     WHERE u.period = coalesce(p_period, report_latest_period())
       AND u.service IS NOT DISTINCT FROM p_service
       AND (p_region IS NULL OR coalesce(c.region, 'unknown') = p_region)
       AND (p_plan IS NULL OR c.plan = p_plan)
     ORDER BY u.rated DESC, u.customer_id
     LIMIT coalesce(p_limit, 100)
$$;

CREATE FUNCTION report_rfm(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (customer_id BIGINT, name TEXT, region TEXT, plan TEXT, last_event TIMESTAMPTZ,
               recency_days INT, frequency BIGINT, monetary NUMERIC, r INT, f INT, m INT,
               rfm TEXT, segment TEXT)
LANGUAGE sql STABLE AS $$
    SELECT x.customer_id, c.name, coalesce(c.region, 'unknown'), c.plan, x.last_event,
           x.recency_days, x.frequency, x.monetary, x.r, x.f, x.m,
           x.r::text || x.f::text || x.m::text, x.segment
      FROM report_rfm_mv x
      JOIN customers c USING (customer_id)
     WHERE x.period = coalesce(p_period, report_latest_period())
       AND (p_region IS NULL OR coalesce(c.region, 'unknown') = p_region)
       AND (p_plan IS NULL OR c.plan = p_plan)
     ORDER BY x.monetary DESC, x.customer_id
     LIMIT coalesce(p_limit, 100)
$$;

CREATE FUNCTION report_rfm_segments(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (segment TEXT, customers BIGINT, share_pct NUMERIC, avg_recency_days NUMERIC,
               avg_frequency NUMERIC, avg_monetary NUMERIC, monetary NUMERIC)
LANGUAGE sql STABLE AS $$
    SELECT x.segment, count(*)::bigint,
           round(100.0 * count(*) / sum(count(*)) OVER (), 2),
           round(avg(x.recency_days), 1), round(avg(x.frequency), 1),
           round(avg(x.monetary), 2), sum(x.monetary)
      FROM report_rfm_mv x
      JOIN customers c USING (customer_id)
     WHERE x.period = coalesce(p_period, report_latest_period())
       AND (p_region IS NULL OR coalesce(c.region, 'unknown') = p_region)
       AND (p_plan IS NULL OR c.plan = p_plan)
     GROUP BY x.segment
     ORDER BY sum(x.monetary) DESC, x.segment
$$;

CREATE FUNCTION report_service_profitability(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (service TEXT, zone TEXT, events BIGINT, units BIGINT, rated NUMERIC,
               cost NUMERIC, margin NUMERIC, margin_pct NUMERIC)
LANGUAGE sql STABLE AS $$
    SELECT z.service, z.zone, sum(z.events)::bigint, sum(z.units)::bigint, sum(z.rated),
           sum(z.cost), sum(z.rated) - sum(z.cost),
           CASE WHEN sum(z.rated) > 0
                THEN round(100 * (sum(z.rated) - sum(z.cost)) / sum(z.rated), 2) END
      FROM report_zone_mv z
     WHERE z.period = coalesce(p_period, report_latest_period())
       AND (p_region IS NULL OR z.region = p_region)
       AND (p_plan IS NULL OR z.plan = p_plan)
     GROUP BY z.service, z.zone
     ORDER BY z.service, sum(z.rated) DESC, z.zone
$$;

CREATE FUNCTION report_usage_by_hour(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (weekday INT, hour INT, events BIGINT, units BIGINT, rated NUMERIC)
LANGUAGE sql STABLE AS $$
    SELECT h.weekday, h.hour, sum(h.events)::bigint, sum(h.units)::bigint, sum(h.rated)
      FROM report_hourly_mv h
     WHERE h.period = coalesce(p_period, report_latest_period())
       AND (p_service IS NULL OR h.service = p_service)
       AND (p_region IS NULL OR h.region = p_region)
     GROUP BY h.weekday, h.hour
     ORDER BY h.weekday, h.hour
$$;

CREATE FUNCTION report_usage_by_technology(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (technology TEXT, events BIGINT, units BIGINT, rated NUMERIC, share_pct NUMERIC)
LANGUAGE sql STABLE AS $$
    SELECT h.technology, sum(h.events)::bigint, sum(h.units)::bigint, sum(h.rated),
           round(100.0 * sum(h.events) / sum(sum(h.events)) OVER (), 2)
      FROM report_hourly_mv h
     WHERE h.period = coalesce(p_period, report_latest_period())
       AND (p_service IS NULL OR h.service = p_service)
       AND (p_region IS NULL OR h.region = p_region)
     GROUP BY h.technology
     ORDER BY sum(h.events) DESC, h.technology
$$;

CREATE FUNCTION report_data_quality(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (day DATE, consumed BIGINT, accepted BIGINT, duplicates BIGINT, suspense BIGINT,
               rejected BIGINT, reject_rate_pct NUMERIC)
LANGUAGE sql STABLE AS $$
    SELECT q.day, q.consumed, q.accepted, q.duplicates, q.suspense, q.rejected,
           CASE WHEN q.consumed > 0 THEN round(100.0 * q.rejected / q.consumed, 2) END
      FROM report_quality_mv q
     WHERE p_period IS NULL
        OR (q.day >= p_period AND q.day < p_period + interval '1 month')
     ORDER BY q.day
$$;

CREATE FUNCTION report_rejects_by_reason(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (reason TEXT, records BIGINT, share_pct NUMERIC)
LANGUAGE sql STABLE AS $$
    SELECT x.reason, sum(x.records)::bigint,
           round(100.0 * sum(x.records) / sum(sum(x.records)) OVER (), 2)
      FROM report_rejects_mv x
     WHERE p_period IS NULL
        OR (x.day >= p_period AND x.day < p_period + interval '1 month')
     GROUP BY x.reason
     ORDER BY sum(x.records) DESC, x.reason
$$;

-- Late usage is a small table (one row per late event), read live.
CREATE FUNCTION report_late_usage(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (period DATE, events BIGINT, amount NUMERIC, billed_events BIGINT,
               billed_amount NUMERIC, pending_events BIGINT, pending_amount NUMERIC)
LANGUAGE sql STABLE AS $$
    SELECT a.period, count(*)::bigint, sum(a.delta),
           count(*) FILTER (WHERE a.billed_on IS NOT NULL)::bigint,
           coalesce(sum(a.delta) FILTER (WHERE a.billed_on IS NOT NULL), 0),
           count(*) FILTER (WHERE a.billed_on IS NULL)::bigint,
           coalesce(sum(a.delta) FILTER (WHERE a.billed_on IS NULL), 0)
      FROM rating_adjustments a
      JOIN customers c USING (customer_id)
     WHERE a.kind = 'late'
       AND (p_period IS NULL OR a.period = p_period)
       AND (p_region IS NULL OR coalesce(c.region, 'unknown') = p_region)
       AND (p_plan IS NULL OR c.plan = p_plan)
     GROUP BY a.period
     ORDER BY a.period
$$;

-- The unfiltered answers as plain views, for psql and Grafana.
CREATE VIEW report_kpis AS SELECT * FROM report_kpis(NULL, NULL, NULL, NULL, NULL);
CREATE VIEW report_revenue_by_month AS SELECT * FROM report_revenue_by_month(NULL, NULL, NULL, NULL, NULL);
CREATE VIEW report_revenue_by_service AS SELECT * FROM report_revenue_by_service(NULL, NULL, NULL, NULL, NULL);
CREATE VIEW report_revenue_by_region AS SELECT * FROM report_revenue_by_region(NULL, NULL, NULL, NULL, NULL);
CREATE VIEW report_revenue_by_region_month AS SELECT * FROM report_revenue_by_region_month(NULL, NULL, NULL, NULL, NULL);
CREATE VIEW report_revenue_by_plan AS SELECT * FROM report_revenue_by_plan(NULL, NULL, NULL, NULL, NULL);
CREATE VIEW report_arpu AS SELECT * FROM report_arpu(NULL, NULL, NULL, NULL, NULL);
CREATE VIEW report_top_customers AS SELECT * FROM report_top_customers(NULL, NULL, NULL, NULL, NULL);
CREATE VIEW report_rfm AS SELECT * FROM report_rfm(NULL, NULL, NULL, NULL, NULL);
CREATE VIEW report_rfm_segments AS SELECT * FROM report_rfm_segments(NULL, NULL, NULL, NULL, NULL);
CREATE VIEW report_service_profitability AS SELECT * FROM report_service_profitability(NULL, NULL, NULL, NULL, NULL);
CREATE VIEW report_usage_by_hour AS SELECT * FROM report_usage_by_hour(NULL, NULL, NULL, NULL, NULL);
CREATE VIEW report_usage_by_technology AS SELECT * FROM report_usage_by_technology(NULL, NULL, NULL, NULL, NULL);
CREATE VIEW report_data_quality AS SELECT * FROM report_data_quality(NULL, NULL, NULL, NULL, NULL);
CREATE VIEW report_rejects_by_reason AS SELECT * FROM report_rejects_by_reason(NULL, NULL, NULL, NULL, NULL);
CREATE VIEW report_late_usage AS SELECT * FROM report_late_usage(NULL, NULL, NULL, NULL, NULL);
