-- Report aggregates recomputed per period: only the months and days that changed since
-- the last refresh, not the whole history.
--
-- The materialized views of V4, V5 and V9 (report_*_mv) become tables (report_*_agg)
-- with the same columns, keys and contents (copied from the views, so the reports answer
-- as before until the first refresh). Triggers on the tables the aggregates read append
-- the periods (months) and days they touched to two logs; report_refresh() takes the
-- marks it can see, recomputes those periods and days, and deletes the marks. A refresh
-- after a day of traffic reads that month's usage, whatever the length of the history.
--
-- Why a log with no key: a committer only appends (no row lock, no conflict between
-- committers of different partitions). report_refresh() deletes the marks visible to it;
-- a mark whose transaction commits later stays for the next refresh, and since a mark
-- commits with the rows it marks, every row a deleted mark stood for is visible to the
-- statements that recompute it. A refresh may recompute a period twice, never miss one.
--
-- What marks what:
-- - usage_events (insert, re-rating, delete): the rows' periods;
-- - invoices and invoice_lines: the invoices' periods;
-- - customers: a changed region, plan or activation day marks the periods of the
--   customer's usage and invoices; a new customer, or a changed activation day, marks
--   every period from that month on (RFM ranks every customer activated by a month's end);
-- - committed_batches and rejected_records: the instants of the rows, turned into days in
--   the refresh's time zone.
-- A period's RFM also depends on the two months before it and, while the month is not
-- over, on the clock (recency): report_refresh() recomputes it for those too.

-- --------------------------------------------------------------- the aggregate tables

CREATE TABLE report_customer_usage_agg AS SELECT * FROM report_customer_usage_mv;
ALTER TABLE report_customer_usage_agg
    ALTER COLUMN period SET NOT NULL, ALTER COLUMN customer_id SET NOT NULL,
    ALTER COLUMN service SET NOT NULL,
    ADD PRIMARY KEY (period, customer_id, service);
CREATE INDEX report_customer_usage_agg_top
    ON report_customer_usage_agg (period, service, rated DESC, customer_id);

CREATE TABLE report_segment_agg AS SELECT * FROM report_segment_mv;
CREATE UNIQUE INDEX report_segment_agg_key ON report_segment_agg (period, region, plan, service);

CREATE TABLE report_zone_agg AS SELECT * FROM report_zone_mv;
CREATE UNIQUE INDEX report_zone_agg_key
    ON report_zone_agg (period, region, plan, service, zone) NULLS NOT DISTINCT;

CREATE TABLE report_hourly_agg AS SELECT * FROM report_hourly_mv;
CREATE UNIQUE INDEX report_hourly_agg_key
    ON report_hourly_agg (period, region, service, technology, weekday, hour) NULLS NOT DISTINCT;

CREATE TABLE report_billed_agg AS SELECT * FROM report_billed_mv;
CREATE UNIQUE INDEX report_billed_agg_key ON report_billed_agg (period, region, plan, service);

CREATE TABLE report_quality_agg AS SELECT * FROM report_quality_mv;
ALTER TABLE report_quality_agg ALTER COLUMN day SET NOT NULL, ADD PRIMARY KEY (day);

CREATE TABLE report_rejects_agg AS SELECT * FROM report_rejects_mv;
ALTER TABLE report_rejects_agg
    ALTER COLUMN day SET NOT NULL, ALTER COLUMN reason SET NOT NULL,
    ADD PRIMARY KEY (day, reason);

CREATE TABLE report_rfm_agg AS SELECT * FROM report_rfm_mv;
ALTER TABLE report_rfm_agg
    ALTER COLUMN period SET NOT NULL, ALTER COLUMN customer_id SET NOT NULL,
    ADD PRIMARY KEY (period, customer_id);
CREATE INDEX report_rfm_agg_monetary ON report_rfm_agg (period, monetary DESC);

-- The report functions read the aggregates by name: recreate each with the new names.
-- Their definitions are otherwise those of V4, V5 and V9.
DO $$
DECLARE
    f OID;
BEGIN
    FOR f IN SELECT p.oid FROM pg_proc p
              WHERE p.pronamespace = current_schema()::regnamespace
                AND p.proname LIKE 'report\_%' AND p.proname <> 'report_refresh'
                AND p.prosrc ~ 'report_\w+_mv'
    LOOP
        EXECUTE regexp_replace(pg_get_functiondef(f), '(report_\w+)_mv\M', '\1_agg', 'g');
    END LOOP;
END
$$;

DROP FUNCTION report_refresh(TEXT);
DROP MATERIALIZED VIEW report_rfm_mv;
DROP MATERIALIZED VIEW report_segment_mv;
DROP MATERIALIZED VIEW report_customer_usage_mv;
DROP MATERIALIZED VIEW report_zone_mv;
DROP MATERIALIZED VIEW report_hourly_mv;
DROP MATERIALIZED VIEW report_billed_mv;
DROP MATERIALIZED VIEW report_quality_mv;
DROP MATERIALIZED VIEW report_rejects_mv;

-- The dashboards' reader (V12) reads the RFM and segment aggregates.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'cdrflow_reader') THEN
        GRANT SELECT ON report_rfm_agg, report_segment_agg TO cdrflow_reader;
    END IF;
END
$$;

-- What the last refresh recomputed.
ALTER TABLE report_refreshes
    ADD COLUMN whole BOOLEAN NOT NULL DEFAULT true,
    ADD COLUMN periods DATE[] NOT NULL DEFAULT '{}',
    ADD COLUMN days INTEGER NOT NULL DEFAULT 0;

-- --------------------------------------------------------------- where to read a period

-- Block-range indexes: rows arrive in time order, so a month's usage and a day's batches
-- and rejects sit in few block ranges. They cost the inserts almost nothing (a B-tree on
-- period cost a quarter of the insert rate: V2).
CREATE INDEX usage_events_period ON usage_events USING brin (period) WITH (autosummarize = on);
CREATE INDEX committed_batches_at ON committed_batches USING brin (committed_at)
    WITH (autosummarize = on);
CREATE INDEX rejected_records_at ON rejected_records USING brin (rejected_at)
    WITH (autosummarize = on);

-- --------------------------------------------------------------- the marks

CREATE TABLE report_dirty_periods (period DATE NOT NULL);
CREATE TABLE report_dirty_days (at TIMESTAMPTZ NOT NULL);

-- Statement-level triggers with transition tables: one small insert per statement (a
-- committed batch is one COPY), whatever the number of rows.
CREATE FUNCTION report_mark_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO report_dirty_periods (period)
        SELECT DISTINCT period FROM new_rows WHERE period IS NOT NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO report_dirty_periods (period)
        SELECT DISTINCT period FROM old_rows WHERE period IS NOT NULL;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_events_report_insert AFTER INSERT ON usage_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION report_mark_usage();
CREATE TRIGGER usage_events_report_update AFTER UPDATE ON usage_events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION report_mark_usage();
CREATE TRIGGER usage_events_report_delete AFTER DELETE ON usage_events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION report_mark_usage();

-- invoices and usage_events both have a `period`: the same function marks them.
CREATE TRIGGER invoices_report_insert AFTER INSERT ON invoices
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION report_mark_usage();
CREATE TRIGGER invoices_report_update AFTER UPDATE ON invoices
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION report_mark_usage();
CREATE TRIGGER invoices_report_delete AFTER DELETE ON invoices
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION report_mark_usage();

-- A line's period is its invoice's (a line deleted with its invoice: the invoice marks).
CREATE FUNCTION report_mark_invoice_lines() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO report_dirty_periods (period)
        SELECT DISTINCT i.period FROM invoices i WHERE i.number IN (SELECT number FROM new_rows);
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO report_dirty_periods (period)
        SELECT DISTINCT i.period FROM invoices i WHERE i.number IN (SELECT number FROM old_rows);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER invoice_lines_report_insert AFTER INSERT ON invoice_lines
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION report_mark_invoice_lines();
CREATE TRIGGER invoice_lines_report_update AFTER UPDATE ON invoice_lines
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION report_mark_invoice_lines();
CREATE TRIGGER invoice_lines_report_delete AFTER DELETE ON invoice_lines
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION report_mark_invoice_lines();

-- Customers: the aggregates group by home region and plan, and RFM ranks every customer
-- activated by a month's end.
CREATE FUNCTION report_mark_customers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        WITH changed AS (
            SELECT n.customer_id,
                   CASE WHEN n.activated_on IS DISTINCT FROM o.activated_on
                        THEN least(n.activated_on, o.activated_on) END AS activated_from
              FROM new_rows n JOIN old_rows o USING (customer_id)
             WHERE (n.region, n.plan, n.activated_on)
                   IS DISTINCT FROM (o.region, o.plan, o.activated_on)
        )
        INSERT INTO report_dirty_periods (period)
        SELECT u.period FROM report_customer_usage_agg u
         WHERE u.customer_id IN (SELECT customer_id FROM changed) AND u.service = 'all'
        UNION
        SELECT i.period FROM invoices i WHERE i.customer_id IN (SELECT customer_id FROM changed)
        UNION
        SELECT DISTINCT s.period FROM report_segment_agg s
         WHERE s.period >= (SELECT date_trunc('month', min(activated_from))::date FROM changed);
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO report_dirty_periods (period)
        SELECT DISTINCT s.period FROM report_segment_agg s
         WHERE s.period >= (SELECT date_trunc('month', min(activated_on))::date FROM new_rows);
    ELSE
        INSERT INTO report_dirty_periods (period)
        SELECT DISTINCT s.period FROM report_segment_agg s
         WHERE s.period >= (SELECT date_trunc('month', min(activated_on))::date FROM old_rows);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER customers_report_insert AFTER INSERT ON customers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION report_mark_customers();
CREATE TRIGGER customers_report_update AFTER UPDATE ON customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION report_mark_customers();
CREATE TRIGGER customers_report_delete AFTER DELETE ON customers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION report_mark_customers();

-- The audit trail: the instants of the rows (one per committed batch's transaction).
CREATE FUNCTION report_mark_batches() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO report_dirty_days (at) SELECT DISTINCT committed_at FROM new_rows;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO report_dirty_days (at) SELECT DISTINCT committed_at FROM old_rows;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER committed_batches_report_insert AFTER INSERT ON committed_batches
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION report_mark_batches();
CREATE TRIGGER committed_batches_report_update AFTER UPDATE ON committed_batches
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION report_mark_batches();
CREATE TRIGGER committed_batches_report_delete AFTER DELETE ON committed_batches
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION report_mark_batches();

CREATE FUNCTION report_mark_rejects() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO report_dirty_days (at) SELECT DISTINCT rejected_at FROM new_rows;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO report_dirty_days (at) SELECT DISTINCT rejected_at FROM old_rows;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER rejected_records_report_insert AFTER INSERT ON rejected_records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION report_mark_rejects();
CREATE TRIGGER rejected_records_report_update AFTER UPDATE ON rejected_records
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION report_mark_rejects();
CREATE TRIGGER rejected_records_report_delete AFTER DELETE ON rejected_records
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION report_mark_rejects();

-- --------------------------------------------------------------- the refresh

-- Recompute the aggregates of the marked periods and days (whole: of every period and
-- day) in the operator's time zone; a zone other than the last refresh's recomputes
-- everything, as does the first refresh. Refreshes take turns (an advisory lock); the
-- reports read the previous rows until the refresh commits.
CREATE FUNCTION report_refresh(tz TEXT, whole BOOLEAN DEFAULT false)
RETURNS NUMERIC LANGUAGE plpgsql AS $$
DECLARE
    started TIMESTAMPTZ := clock_timestamp();
    took NUMERIC;
    previous report_refreshes%ROWTYPE;
    changed_periods DATE[];
    rfm_periods DATE[];
    changed_days DATE[];
    new_periods BOOLEAN;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('cdrflow report_refresh'));
    PERFORM set_config('TimeZone', tz, true);
    -- The arrays differ from one refresh to the next: plan each statement for them. A
    -- month's aggregation is hashed in memory; compiling it would take longer than it runs.
    PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
    PERFORM set_config('work_mem', '256MB', true);
    PERFORM set_config('jit', 'off', true);
    -- A month is read through the block-range index on period and aggregated by hashing.
    -- The planner cannot know it: the newest month is never in its statistics (nor is
    -- anything, where autovacuum is off), so it would read the whole table and sort.
    PERFORM set_config('enable_seqscan', 'off', true);
    PERFORM set_config('enable_sort', 'off', true);
    PERFORM set_config('client_min_messages', 'warning', true);
    -- Block ranges filled since the last summary (autovacuum's work, when it runs) would
    -- be read whatever the month asked for.
    BEGIN
        PERFORM brin_summarize_new_values('usage_events_period'::regclass),
                brin_summarize_new_values('committed_batches_at'::regclass),
                brin_summarize_new_values('rejected_records_at'::regclass);
    EXCEPTION WHEN insufficient_privilege THEN
        NULL;  -- not the tables' owner: autovacuum summarizes them
    END;
    SELECT * INTO previous FROM report_refreshes;
    whole := whole OR previous.timezone IS DISTINCT FROM tz;

    WITH taken AS (DELETE FROM report_dirty_periods RETURNING period)
    SELECT coalesce(array_agg(DISTINCT period), '{}') INTO changed_periods FROM taken;
    WITH taken AS (DELETE FROM report_dirty_days RETURNING at)
    SELECT coalesce(array_agg(DISTINCT at::date), '{}') INTO changed_days FROM taken;
    IF whole THEN
        SELECT coalesce(array_agg(p), '{}') INTO changed_periods FROM (
            SELECT DISTINCT period AS p FROM usage_events WHERE period IS NOT NULL
            UNION SELECT period FROM invoices
            UNION SELECT period FROM report_customer_usage_agg
            UNION SELECT period FROM report_billed_agg) x;
        SELECT coalesce(array_agg(d), '{}') INTO changed_days FROM (
            SELECT DISTINCT committed_at::date AS d FROM committed_batches
            UNION SELECT rejected_at::date FROM rejected_records
            UNION SELECT day FROM report_quality_agg
            UNION SELECT day FROM report_rejects_agg) x;
    END IF;

    -- The planner needs statistics for a month the aggregates did not have.
    new_periods := EXISTS (SELECT FROM unnest(changed_periods) AS p
                            WHERE NOT EXISTS (SELECT FROM report_segment_agg s WHERE s.period = p));

    -- Per customer, month and service ('all': all services together). Most rows of a
    -- month are as they were after a day of traffic: only the rows that differ are
    -- written.
    DROP TABLE IF EXISTS report_new_customer_usage;  -- a second refresh in one transaction
    CREATE TEMP TABLE report_new_customer_usage ON COMMIT DROP AS
    SELECT period, customer_id,
           CASE WHEN GROUPING(record_type) = 1 THEN 'all' ELSE record_type END AS service,
           count(*)::bigint AS events, sum(units)::bigint AS units, sum(amount) AS rated,
           sum(cost) AS cost, max(event_time) AS last_event
      FROM usage_events
     WHERE amount IS NOT NULL AND period = ANY (changed_periods)
     GROUP BY GROUPING SETS ((period, customer_id, record_type), (period, customer_id));
    DELETE FROM report_customer_usage_agg t
     WHERE t.period = ANY (changed_periods)
       AND NOT EXISTS (SELECT FROM report_new_customer_usage n
                        WHERE n.period = t.period AND n.customer_id = t.customer_id
                          AND n.service = t.service);
    -- The target's rows of these months only (every source row is of one of them).
    MERGE INTO report_customer_usage_agg t
    USING report_new_customer_usage n
       ON t.period = ANY (changed_periods)
      AND t.period = n.period AND t.customer_id = n.customer_id AND t.service = n.service
     WHEN MATCHED AND (t.events, t.units, t.rated, t.cost, t.last_event)
                      IS DISTINCT FROM (n.events, n.units, n.rated, n.cost, n.last_event) THEN
          UPDATE SET events = n.events, units = n.units, rated = n.rated, cost = n.cost,
                     last_event = n.last_event
     WHEN NOT MATCHED THEN
          INSERT VALUES (n.period, n.customer_id, n.service, n.events, n.units, n.rated,
                         n.cost, n.last_event);

    -- Per month, home region, plan and service.
    DELETE FROM report_segment_agg WHERE period = ANY (changed_periods);
    INSERT INTO report_segment_agg
    SELECT u.period, coalesce(c.region, 'unknown'), c.plan, u.service,
           count(*)::bigint, sum(u.events)::bigint, sum(u.units)::bigint, sum(u.rated),
           sum(u.cost)
      FROM report_customer_usage_agg u
      JOIN customers c USING (customer_id)
     WHERE u.period = ANY (changed_periods)
     GROUP BY u.period, coalesce(c.region, 'unknown'), c.plan, u.service;

    -- Per month, region, plan, service and zone: profitability.
    DELETE FROM report_zone_agg WHERE period = ANY (changed_periods);
    INSERT INTO report_zone_agg
    SELECT e.period, coalesce(c.region, 'unknown'), c.plan, e.record_type, e.zone,
           count(*)::bigint, sum(e.units)::bigint, sum(e.amount), sum(e.cost)
      FROM usage_events e
      JOIN customers c USING (customer_id)
     WHERE e.amount IS NOT NULL AND e.period = ANY (changed_periods)
     GROUP BY 1, 2, 3, 4, 5;

    -- Per month, region, service, technology, ISO weekday and hour (operator time zone).
    DELETE FROM report_hourly_agg WHERE period = ANY (changed_periods);
    INSERT INTO report_hourly_agg
    SELECT e.period, coalesce(c.region, 'unknown'), e.record_type, e.technology,
           extract(isodow FROM e.event_time)::int, extract(hour FROM e.event_time)::int,
           count(*)::bigint, sum(e.units)::bigint, sum(e.amount)
      FROM usage_events e
      JOIN customers c USING (customer_id)
     WHERE e.amount IS NOT NULL AND e.period = ANY (changed_periods)
     GROUP BY 1, 2, 3, 4, 5, 6;

    -- Issued invoices per month, region and plan: whole invoices (service 'all') and,
    -- per service, the lines of that service.
    DELETE FROM report_billed_agg WHERE period = ANY (changed_periods);
    INSERT INTO report_billed_agg
    SELECT i.period, coalesce(c.region, 'unknown'), c.plan, 'all'::text,
           count(*)::bigint, sum(i.subtotal), sum(i.total)
      FROM invoices i
      JOIN customers c USING (customer_id)
     WHERE i.period = ANY (changed_periods)
     GROUP BY 1, 2, 3
    UNION ALL
    -- Each invoice's lines of one service first (usage and allowance credit), read by
    -- invoice number, so that counting them counts invoices.
    SELECT i.period, coalesce(c.region, 'unknown'), c.plan, l.service, count(*)::bigint,
           sum(l.amount), NULL
      FROM invoices i
      JOIN customers c USING (customer_id)
     CROSS JOIN LATERAL (
        SELECT l.service, sum(l.amount) AS amount
          FROM invoice_lines l
         WHERE l.number = i.number AND l.service IS NOT NULL
         GROUP BY l.service) l
     WHERE i.period = ANY (changed_periods)
     GROUP BY 1, 2, 3, 4;

    -- RFM of a month reads that month and the two before; until the month is over, its
    -- recency is counted to now.
    SELECT coalesce(array_agg(DISTINCT p), '{}') INTO rfm_periods FROM (
        SELECT (unnest(changed_periods) + m * interval '1 month')::date AS p
          FROM generate_series(0, 2) AS m
        UNION ALL
        -- Months not over at the last refresh (the key's range, not the whole table).
        SELECT DISTINCT period FROM report_rfm_agg
         WHERE period >= date_trunc('month', coalesce(previous.refreshed_at, '-infinity'))::date) x;
    DROP TABLE IF EXISTS report_new_rfm;
    CREATE TEMP TABLE report_new_rfm ON COMMIT DROP AS
    WITH periods AS (
        SELECT p AS period FROM unnest(rfm_periods) AS p
         WHERE EXISTS (SELECT FROM report_customer_usage_agg u WHERE u.period = p)
    ), win AS (
        SELECT p.period, u.customer_id, max(u.last_event) AS last_event,
               sum(u.events)::bigint AS frequency, sum(u.rated) AS monetary
          FROM periods p
          JOIN report_customer_usage_agg u
            ON u.period = ANY (ARRAY[p.period, (p.period - interval '1 month')::date,
                                     (p.period - interval '2 months')::date])
           AND u.service = 'all'
         GROUP BY p.period, u.customer_id
    ), base AS (
        SELECT p.period, c.customer_id, w.last_event,
               coalesce(w.frequency, 0) AS frequency, coalesce(w.monetary, 0) AS monetary,
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
    DELETE FROM report_rfm_agg t
     WHERE t.period = ANY (rfm_periods)
       AND NOT EXISTS (SELECT FROM report_new_rfm n
                        WHERE n.period = t.period AND n.customer_id = t.customer_id);
    MERGE INTO report_rfm_agg t
    USING report_new_rfm n
       ON t.period = ANY (rfm_periods)
      AND t.period = n.period AND t.customer_id = n.customer_id
     WHEN MATCHED AND (t.last_event, t.frequency, t.monetary, t.recency_days, t.r, t.f, t.m,
                       t.segment)
                      IS DISTINCT FROM (n.last_event, n.frequency, n.monetary, n.recency_days,
                                        n.r, n.f, n.m, n.segment) THEN
          UPDATE SET last_event = n.last_event, frequency = n.frequency, monetary = n.monetary,
                     recency_days = n.recency_days, r = n.r, f = n.f, m = n.m,
                     segment = n.segment
     WHEN NOT MATCHED THEN
          INSERT VALUES (n.period, n.customer_id, n.last_event, n.frequency, n.monetary,
                         n.recency_days, n.r, n.f, n.m, n.segment);

    -- Per processing day: what the committers did, and the rejects by reason.
    DELETE FROM report_quality_agg WHERE day = ANY (changed_days);
    INSERT INTO report_quality_agg
    SELECT b.committed_at::date, sum(b.records)::bigint, sum(b.accepted)::bigint,
           sum(b.unverified_peers)::bigint, sum(b.duplicates)::bigint,
           sum(b.suspense)::bigint, sum(b.rejected)::bigint
      FROM unnest(changed_days) AS d (day)
      JOIN committed_batches b
        ON b.committed_at >= d.day::timestamptz AND b.committed_at < (d.day + 1)::timestamptz
     GROUP BY 1;

    DELETE FROM report_rejects_agg WHERE day = ANY (changed_days);
    INSERT INTO report_rejects_agg
    SELECT r.rejected_at::date, r.reason, count(*)::bigint
      FROM unnest(changed_days) AS d (day)
      JOIN rejected_records r
        ON r.rejected_at >= d.day::timestamptz AND r.rejected_at < (d.day + 1)::timestamptz
     GROUP BY 1, 2;

    IF whole OR new_periods THEN
        ANALYZE report_customer_usage_agg, report_segment_agg, report_zone_agg, report_hourly_agg,
                report_billed_agg, report_quality_agg, report_rejects_agg, report_rfm_agg;
    END IF;
    took := round(extract(epoch FROM clock_timestamp() - started)::numeric, 3);
    INSERT INTO report_refreshes (refreshed_at, seconds, timezone, whole, periods, days)
    VALUES (clock_timestamp(), took, tz, whole,
            ARRAY(SELECT unnest(changed_periods) ORDER BY 1), cardinality(changed_days))
    ON CONFLICT (id) DO UPDATE
       SET refreshed_at = EXCLUDED.refreshed_at, seconds = EXCLUDED.seconds,
           timezone = EXCLUDED.timezone, whole = EXCLUDED.whole,
           periods = EXCLUDED.periods, days = EXCLUDED.days;
    RETURN took;
END $$;

-- The aggregates copied above are as fresh as the views' last refresh: the first refresh
-- recomputes every period and day.
INSERT INTO report_dirty_periods (period)
SELECT period FROM usage_events WHERE period IS NOT NULL
UNION SELECT period FROM invoices
UNION SELECT period FROM report_customer_usage_agg
UNION SELECT period FROM report_billed_agg;
INSERT INTO report_dirty_days (at)
SELECT committed_at FROM committed_batches
UNION SELECT rejected_at FROM rejected_records;

ANALYZE report_customer_usage_agg, report_segment_agg, report_zone_agg, report_hourly_agg,
        report_billed_agg, report_quality_agg, report_rejects_agg, report_rfm_agg;
