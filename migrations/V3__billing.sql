-- Billing: month-to-date usage buckets, credit-limit alerts, invoices with a gap-free
-- number sequence, late usage.

-- One customer's usage in one period at one unit price: the (tariff, band, catalog
-- version) key fixes the price. Fed by additive upserts in the batch transaction from
-- the rows that transaction inserted, so a bucket is always the sum of its events
-- (`cdrflow bill` and the reconciliation test check it against usage_events).
-- fillfactor leaves room on each page so that the additive updates stay HOT.
CREATE TABLE usage_buckets (
    customer_id      BIGINT NOT NULL,
    period           DATE NOT NULL,
    tariff_id        TEXT NOT NULL,
    band             TEXT NOT NULL,
    catalog_version  INTEGER NOT NULL,
    service          TEXT NOT NULL CHECK (service IN ('voice', 'sms', 'data')),
    zone             TEXT NOT NULL,
    price            NUMERIC(18, 6) NOT NULL,
    units            BIGINT NOT NULL,
    events           BIGINT NOT NULL,
    amount           NUMERIC(18, 6) NOT NULL,
    extra            NUMERIC(18, 6) NOT NULL,
    cost             NUMERIC(18, 6) NOT NULL,
    PRIMARY KEY (customer_id, period, tariff_id, band, catalog_version)
) WITH (fillfactor = 70);

-- Usage that arrived after its period was closed is stored as usage of its own period
-- (so reports by event time stay right) and owed on the next open invoice, like a
-- re-rating of a closed period: both are rating_adjustments, told apart by `kind`.
ALTER TABLE rating_adjustments
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'rerate' CHECK (kind IN ('rerate', 'late'));

-- A period is closed first (no more usage enters its buckets), then invoiced.
ALTER TABLE billing_periods
    ADD COLUMN billed_at  TIMESTAMPTZ,
    ADD COLUMN invoices   INTEGER;

-- Credit-limit alerts, raised once per customer, period and threshold: the unique key
-- is what makes "once" hold across restarts and replays.
CREATE TABLE alerts (
    id            BIGSERIAL PRIMARY KEY,
    customer_id   BIGINT NOT NULL,
    period        DATE NOT NULL,
    threshold     SMALLINT NOT NULL CHECK (threshold > 0),
    amount        NUMERIC(18, 2) NOT NULL,
    credit_limit  NUMERIC(12, 2) NOT NULL,
    raised_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (customer_id, period, threshold)
);

-- The gap-free invoice number: one row, incremented in the transaction that inserts the
-- invoices it numbers, so a rolled-back run leaves no hole (a SEQUENCE would).
CREATE TABLE invoice_sequence (
    series      TEXT PRIMARY KEY,
    last_value  BIGINT NOT NULL CHECK (last_value >= 0)
);
INSERT INTO invoice_sequence (series, last_value) VALUES ('invoice', 0);

-- `document` is the invoice JSON exactly as written to disk and served by the API
-- (TEXT, not JSONB, which would reorder it).
CREATE TABLE invoices (
    number           TEXT PRIMARY KEY,
    seq              BIGINT NOT NULL UNIQUE,
    customer_id      BIGINT NOT NULL,
    period           DATE NOT NULL,
    catalog_version  INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    subtotal         NUMERIC(18, 2) NOT NULL,
    vat              NUMERIC(18, 2) NOT NULL,
    total            NUMERIC(18, 2) NOT NULL,
    document         TEXT NOT NULL,
    issued_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (customer_id, period)
);
CREATE INDEX invoices_period ON invoices (period);

CREATE TABLE invoice_lines (
    number       TEXT NOT NULL REFERENCES invoices (number),
    line_no      INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    service      TEXT,
    description  TEXT NOT NULL,
    event_date   DATE,
    quantity     NUMERIC(18, 2),
    unit         TEXT,
    rated        NUMERIC(18, 6),
    amount       NUMERIC(18, 2) NOT NULL,
    PRIMARY KEY (number, line_no)
);
