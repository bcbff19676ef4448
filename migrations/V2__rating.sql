-- Rating: the versioned catalog, customer plans, rated usage, billing periods, re-rating
-- adjustments and suspense resolution.

-- Every `cdrflow catalog apply` adds a version; the highest version is the active one.
-- `source` is the file as the operator wrote it: the daemon parses it again on load, so
-- the stored text is the single truth of what a version means.
CREATE TABLE catalog_versions (
    version     INTEGER PRIMARY KEY,
    label       TEXT NOT NULL,
    source      TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The priced cells of each version, relational for reports (profitability joins on
-- tariff_id and band). One row per plan × service × zone × band.
CREATE TABLE catalog_tariffs (
    version         INTEGER NOT NULL REFERENCES catalog_versions (version),
    tariff_id       TEXT NOT NULL,
    plan            TEXT NOT NULL,
    service         TEXT NOT NULL CHECK (service IN ('voice', 'sms', 'data')),
    zone            TEXT NOT NULL,
    band            TEXT NOT NULL,
    unit            TEXT NOT NULL,
    price           NUMERIC(18, 6) NOT NULL CHECK (price >= 0),
    wholesale       NUMERIC(18, 6) NOT NULL CHECK (wholesale >= 0),
    charging        TEXT,
    connection_fee  NUMERIC(18, 6) NOT NULL DEFAULT 0,
    minimum_charge  NUMERIC(18, 6) NOT NULL DEFAULT 0,
    PRIMARY KEY (version, tariff_id, band)
);

CREATE TABLE catalog_plans (
    version      INTEGER NOT NULL REFERENCES catalog_versions (version),
    plan         TEXT NOT NULL,
    name         TEXT NOT NULL,
    monthly_fee  NUMERIC(18, 6) NOT NULL,
    PRIMARY KEY (version, plan)
);

-- Customers get what rating and billing need. Existing rows (from the spine) get the
-- basic plan; `catalog apply` refuses a catalog that lacks a plan customers are on.
ALTER TABLE customers
    ADD COLUMN plan          TEXT NOT NULL DEFAULT 'basic',
    ADD COLUMN region        TEXT,
    ADD COLUMN is_student    BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN activated_on  DATE NOT NULL DEFAULT CURRENT_DATE,
    ADD COLUMN credit_limit  NUMERIC(12, 2) NOT NULL DEFAULT 500.00 CHECK (credit_limit >= 0),
    ADD COLUMN updated_at    TIMESTAMPTZ NOT NULL DEFAULT now();

-- The rating of each event. Rows stored by the spine before rating existed keep NULLs;
-- everything committed from now on is rated in the same transaction it is stored in.
-- `band` is the band the event starts in (for most events, its only band). A call split
-- at band boundaries also keeps one element per part in the three arrays, in time order;
-- they are NULL for an event in one band, which keeps rows a quarter smaller (arrays on
-- every row measured 92 bytes a row). units and amount are the whole event's.
ALTER TABLE usage_events
    ADD COLUMN period           DATE,
    ADD COLUMN plan             TEXT,
    ADD COLUMN tariff_id        TEXT,
    ADD COLUMN zone             TEXT,
    ADD COLUMN band             TEXT,
    ADD COLUMN bands            TEXT[],
    ADD COLUMN band_units       BIGINT[],
    ADD COLUMN band_amounts     NUMERIC(18, 6)[],
    ADD COLUMN units            BIGINT CHECK (units >= 0),
    ADD COLUMN amount           NUMERIC(18, 6) CHECK (amount >= 0),
    ADD COLUMN cost             NUMERIC(18, 6) CHECK (cost >= 0),
    ADD COLUMN catalog_version  INTEGER;
-- No index on period: it cost a quarter of the insert rate (measured), and per-customer
-- reads go through (customer_id, event_time), whose range gives the period.

-- Billing periods (first day of the month, operator time zone). A closed period is
-- never changed again: re-rating books its differences as adjustments instead.
CREATE TABLE billing_periods (
    period     DATE PRIMARY KEY CHECK (EXTRACT(DAY FROM period) = 1),
    closed_at  TIMESTAMPTZ
);

-- Every change of an accepted event's price after it was first stored. `in_place`:
-- the event was in an open period and usage_events now holds the new price (this row is
-- the audit trail). Otherwise the period was closed: usage_events keeps the invoiced
-- price and `delta` is owed on the next open invoice (`billed_on` set by billing).
CREATE TABLE rating_adjustments (
    id               BIGSERIAL PRIMARY KEY,
    record_id        TEXT NOT NULL,
    customer_id      BIGINT NOT NULL,
    period           DATE NOT NULL,
    catalog_version  INTEGER NOT NULL,
    old_amount       NUMERIC(18, 6) NOT NULL,
    new_amount       NUMERIC(18, 6) NOT NULL,
    delta            NUMERIC(18, 6) NOT NULL,
    in_place         BOOLEAN NOT NULL,
    billed_on        TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX rating_adjustments_record ON rating_adjustments (record_id);
CREATE INDEX rating_adjustments_open ON rating_adjustments (customer_id) WHERE NOT in_place AND billed_on IS NULL;

-- `cdrflow replay --rerate` sets this to the offset the partition had reached: records
-- below it that are already stored are priced again when they come back.
ALTER TABLE consumer_offsets ADD COLUMN rerate_below BIGINT;

-- Why a record is held: its subscriber is unknown (the usual case), or a known
-- subscriber's record could not be rated (a catalog problem, named in `reason`).
ALTER TABLE suspense_records ADD COLUMN reason TEXT NOT NULL DEFAULT 'unknown_subscriber';

-- Totals per customer and period as rating left them: the stored amounts plus the
-- adjustments still owed for closed periods. Billing (buckets, invoices) builds on this.
CREATE VIEW customer_period_totals AS
SELECT customer_id, period, count(*) AS events, sum(amount) AS amount, sum(cost) AS cost
  FROM usage_events
 WHERE amount IS NOT NULL
 GROUP BY customer_id, period;

-- How a held record left suspense: 'rated' (it is now usage) or 'duplicate' (the same
-- event had reached usage by another way).
ALTER TABLE suspense_records ADD COLUMN resolution TEXT CHECK (resolution IN ('rated', 'duplicate'));
