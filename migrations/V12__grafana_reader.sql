-- cdrflow_reader: the read-only role Grafana's PostgreSQL data source reads as, through
-- a LOGIN role that is a member of it (docker-compose.yml's grafana-login job makes one
-- from a secret file; an operator makes their own with CREATE ROLE grafana LOGIN
-- PASSWORD '...' IN ROLE cdrflow_reader). It reads exactly the relations that the
-- dashboards of grafana/ query, directly or through the report functions they call (of
-- the per-event tables, only the columns they use), and writes nothing;
-- tests/integration/grafana.rs holds this list to the dashboards.
--
-- A role belongs to the whole cluster, not to one database: several databases of one
-- server share it. It is made only if it does not exist yet; two databases migrating at
-- the same moment may both try, and the one that loses the race gets duplicate_object
-- or, when both passed the check, unique_violation on pg_authid: either way the role
-- exists, which is all this needs.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cdrflow_reader') THEN
        CREATE ROLE cdrflow_reader NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- The schema the migrations create their tables in.
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO cdrflow_reader', current_schema());
END
$$;

GRANT SELECT ON
    -- Revenue: usage totals, customers (the top-customers table shows names and
    -- numbers), catalog names, invoices and their lines, late usage.
    usage_buckets, customers, catalog_tariffs, catalog_plans, billing_periods, invoices,
    invoice_lines, rating_adjustments,
    -- Data quality: what the committers did, rejects by reason.
    committed_batches, pipeline_counters,
    -- report_rfm() reads the RFM aggregate and, without a period, report_latest_period()
    -- the segment one.
    report_rfm_mv, report_segment_mv
TO cdrflow_reader;

-- Two tables hold one row per call, message or session, with both parties' numbers,
-- cells and raw payloads; the dashboards need only these columns of them: the late-usage
-- panel the service of an event, the suspense panel the state of a held record.
GRANT SELECT (record_id, record_type) ON usage_events TO cdrflow_reader;
GRANT SELECT (reason, event_time, resolved_at, resolution) ON suspense_records
TO cdrflow_reader;

-- EXECUTE is PUBLIC's by default; granted here too for a server that revokes it.
GRANT EXECUTE ON FUNCTION report_rfm(DATE, TEXT, TEXT, TEXT, INT), report_latest_period()
TO cdrflow_reader;
