-- Usage by month: usage_events becomes a table partitioned by period (one partition per
-- month, usage_events_YYYY_MM), so that a month can be archived and dropped whole
-- (`cdrflow retention`) and a month's reads touch only its partition.
--
-- One record, stored once. A unique key on a partitioned table must contain the
-- partition key, which would let one record_id be stored in two months. The unique key
-- on record_id moves to a narrow ledger, usage_ids (record_id, period), which a trigger
-- on usage_events fills from every insert statement in the same transaction: a record_id
-- stored already makes the whole statement fail on usage_ids_pkey, as the unique key on
-- usage_events did. Every statement that names usage_events goes through it: suspense
-- resolution, manual fixes, generators. The committers copy straight into a month's
-- partition and write the ids (and the report marks) themselves, because with these
-- triggers' transition tables PostgreSQL copies into a partitioned table one row at a
-- time. A deleted usage row frees its id.
--
-- Where rows go. `migrate` makes the partitions of the current month and the next two;
-- the committers make the partition of any other month before they store its usage (a
-- late record, a backlog). A row of a month that has none yet goes to
-- usage_events_default, whose rows usage_partition() moves into the month's partition
-- when it makes it. Rows stored before rating existed (no period) stay there.
--
-- The migration moves the rows: on a large table it takes as long as copying it.

-- The view of V2 reads the table by identity: drop it, and make it again below.
DROP VIEW customer_period_totals;

ALTER TABLE usage_events RENAME TO usage_events_unpartitioned;

CREATE TABLE usage_events (LIKE usage_events_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (period);
CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT;

CREATE TABLE usage_ids (
    record_id  TEXT PRIMARY KEY,
    period     DATE
);
-- Rows arrive in time order: retention finds a month's ids through block ranges.
CREATE INDEX usage_ids_period ON usage_ids USING brin (period);

-- Create the partition of the month of `p`, moving the month's rows out of
-- usage_events_default first. Idempotent; returns whether it created the partition.
-- Writers of usage_events wait for it (a lock that lets reads go on), once a month.
CREATE FUNCTION usage_partition(p DATE) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE
    first DATE := date_trunc('month', p)::date;
    next DATE := (date_trunc('month', p) + interval '1 month')::date;
    name TEXT := 'usage_events_' || to_char(p, 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    LOCK TABLE usage_events IN SHARE ROW EXCLUSIVE MODE;
    IF to_regclass(name) IS NOT NULL THEN  -- another writer made it meanwhile
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE usage_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    -- Straight from one partition to the other: usage_events' triggers do not fire, the
    -- rows stay what they were (their ids stay in the ledger, their months unmarked).
    EXECUTE format('WITH moved AS (DELETE FROM usage_events_default
                                   WHERE period >= %L AND period < %L RETURNING *)
                    INSERT INTO %I SELECT * FROM moved', first, next, name);
    EXECUTE format('ALTER TABLE usage_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   name, first, next);
    RETURN true;
END $$;

-- The partitions of the months of `days`, made if missing: a committer asks for its
-- batch's months before it copies the batch in (one look-up per month when they exist).
CREATE FUNCTION usage_partitions(days DATE[]) RETURNS INT LANGUAGE sql AS $$
    SELECT count(*) FILTER (WHERE usage_partition(m))::int
      FROM (SELECT DISTINCT date_trunc('month', d)::date AS m
              FROM unnest(days) AS d WHERE d IS NOT NULL) x
$$;

-- Partitions for the month of `today` and the `ahead` months after it.
CREATE FUNCTION usage_partitions_ahead(today DATE, ahead INT) RETURNS INT LANGUAGE sql AS $$
    SELECT usage_partitions(ARRAY(
        SELECT (date_trunc('month', today) + m * interval '1 month')::date
          FROM generate_series(0, ahead) AS m))
$$;

-- The months stored so far, then their rows and ids.
SELECT usage_partition(p)
  FROM (SELECT DISTINCT period AS p FROM usage_events_unpartitioned WHERE period IS NOT NULL) x
 ORDER BY p;
INSERT INTO usage_events SELECT * FROM usage_events_unpartitioned;
INSERT INTO usage_ids (record_id, period) SELECT record_id, period FROM usage_events_unpartitioned;
DROP TABLE usage_events_unpartitioned;

-- The indexes of V1 and V13, on every partition, and record_id's lookups (explain,
-- re-rating) within a partition.
CREATE INDEX usage_events_record ON usage_events (record_id);
CREATE INDEX usage_events_customer_time ON usage_events (customer_id, event_time);
CREATE INDEX usage_events_period ON usage_events USING brin (period);

-- The ledger, kept by every statement that adds or removes usage.
CREATE FUNCTION usage_ids_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO usage_ids (record_id, period) SELECT record_id, period FROM new_rows;
    ELSE
        DELETE FROM usage_ids WHERE record_id IN (SELECT record_id FROM old_rows);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_events_ids_insert AFTER INSERT ON usage_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_ids_keep();
CREATE TRIGGER usage_events_ids_delete AFTER DELETE ON usage_events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_ids_keep();

-- The report marks of V13.
CREATE TRIGGER usage_events_report_insert AFTER INSERT ON usage_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION report_mark_usage();
CREATE TRIGGER usage_events_report_update AFTER UPDATE ON usage_events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION report_mark_usage();
CREATE TRIGGER usage_events_report_delete AFTER DELETE ON usage_events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION report_mark_usage();

CREATE VIEW customer_period_totals AS
SELECT customer_id, period, count(*) AS events, sum(amount) AS amount, sum(cost) AS cost
  FROM usage_events
 WHERE amount IS NOT NULL
 GROUP BY customer_id, period;

-- The dashboards' reader (V12) reads these two columns.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'cdrflow_reader') THEN
        GRANT SELECT (record_id, record_type) ON usage_events TO cdrflow_reader;
    END IF;
END
$$;

-- --------------------------------------------------------------- retention

-- Months whose usage partition `cdrflow retention` dropped, with their rejects (by the
-- month of rejected_at in the operator's time zone), and where the archive went. The
-- report aggregates and invoices of these months keep their rows: report_refresh()
-- recomputes neither these months nor their days.
CREATE TABLE usage_archives (
    period       DATE PRIMARY KEY CHECK (EXTRACT(DAY FROM period) = 1),
    usage_rows   BIGINT NOT NULL,
    reject_rows  BIGINT NOT NULL,
    manifest     TEXT,
    dropped_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- report_refresh() of V13, with two changes made to its text: the block-range index on
-- usage_events is now one per partition (brin_summarize_new_values() takes one index),
-- and archived months and their days are left out of what it recomputes.
DO $$
DECLARE
    def TEXT := pg_get_functiondef('report_refresh(text, boolean)'::regprocedure);
    changed TEXT;
BEGIN
    changed := replace(def, 'brin_summarize_new_values(''usage_events_period''::regclass),', '');
    changed := replace(changed, '    -- The planner needs statistics for a month',
        '    changed_periods := ARRAY(SELECT p FROM unnest(changed_periods) AS p
                               WHERE p NOT IN (SELECT period FROM usage_archives));
    changed_days := ARRAY(SELECT d FROM unnest(changed_days) AS d
                           WHERE date_trunc(''month'', d)::date NOT IN (SELECT period FROM usage_archives));

    -- The planner needs statistics for a month');
    IF changed = def OR position('usage_archives' IN changed) = 0
       OR position('usage_events_period' IN changed) > 0 THEN
        RAISE EXCEPTION 'report_refresh() is not the function V14 expects';
    END IF;
    EXECUTE changed;
END
$$;
