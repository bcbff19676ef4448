-- The pipeline spine: customers, accepted usage, rejects, suspense, offsets and the
-- counters that reconcile them. Applied by `cdrflow migrate` and at daemon start.

CREATE TABLE customers (
    customer_id  BIGSERIAL PRIMARY KEY,
    msisdn       TEXT NOT NULL UNIQUE CHECK (msisdn ~ '^\+[1-9][0-9]{6,14}$'),
    name         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per accepted event, unique by record_id (the record's own id or a fingerprint
-- of its canonical content). Not partitioned yet: a partitioned table would need the
-- partition key inside the unique key, which would let the same record_id land twice in
-- two months; that belongs with a separate id ledger once volumes ask for it.
CREATE TABLE usage_events (
    record_id             TEXT PRIMARY KEY,
    -- Resolved from customers in the batch transaction. No foreign key: its per-row check
    -- costs a quarter of the insert rate, and customers are never deleted (they are
    -- deactivated), so it would guard against nothing that can happen.
    customer_id           BIGINT NOT NULL,
    record_type           TEXT NOT NULL CHECK (record_type IN ('voice', 'sms', 'data')),
    msisdn                TEXT NOT NULL,
    peer_msisdn           TEXT,
    peer_country          TEXT,
    peer_class            TEXT CHECK (peer_class IN ('domestic', 'international')),
    event_time            TIMESTAMPTZ NOT NULL,
    duration_sec          INTEGER CHECK (duration_sec >= 0),
    volume_bytes          BIGINT CHECK (volume_bytes >= 0),
    session_duration_sec  INTEGER CHECK (session_duration_sec >= 0),
    cell_id               TEXT NOT NULL,
    city                  TEXT,
    region                TEXT NOT NULL,
    technology            TEXT NOT NULL,
    roaming_country       TEXT,
    src_topic             TEXT NOT NULL,
    src_partition         INTEGER NOT NULL,
    src_offset            BIGINT NOT NULL,
    kafka_ts              TIMESTAMPTZ,
    ingested_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX usage_events_customer_time ON usage_events (customer_id, event_time);

-- Refused records, with their raw bytes and the place they came from. Unique by source
-- position, so replaying a range never stores a reject twice.
CREATE TABLE rejected_records (
    id             BIGSERIAL PRIMARY KEY,
    src_topic      TEXT NOT NULL,
    src_partition  INTEGER NOT NULL,
    src_offset     BIGINT NOT NULL,
    reason         TEXT NOT NULL,
    detail         TEXT NOT NULL,
    raw            BYTEA NOT NULL,
    kafka_key      BYTEA,
    kafka_ts       TIMESTAMPTZ,
    rejected_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (src_topic, src_partition, src_offset)
);
CREATE INDEX rejected_records_reason ON rejected_records (reason, rejected_at);

-- Valid records whose subscriber is not (yet) a customer: kept, normalized, to be
-- processed again once the subscriber appears.
CREATE TABLE suspense_records (
    record_id      TEXT PRIMARY KEY,
    msisdn         TEXT NOT NULL,
    event_time     TIMESTAMPTZ NOT NULL,
    normalized     JSONB NOT NULL,
    raw            BYTEA NOT NULL,
    src_topic      TEXT NOT NULL,
    src_partition  INTEGER NOT NULL,
    src_offset     BIGINT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at    TIMESTAMPTZ
);
CREATE INDEX suspense_records_open ON suspense_records (msisdn) WHERE resolved_at IS NULL;

-- The truth about how far each consumer group got: written in the same transaction as
-- the batch's results. Kafka's own committed offsets only mirror it for lag tools.
CREATE TABLE consumer_offsets (
    group_id     TEXT NOT NULL,
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    next_offset  BIGINT NOT NULL CHECK (next_offset >= 0),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Additive counters per source partition and outcome, updated in the batch transaction:
-- consumed (every record read) and accepted / duplicate / suspense / rejected{reason}.
-- `cdrflow stats` checks consumed = the sum of the outcomes.
CREATE TABLE pipeline_counters (
    group_id   TEXT NOT NULL,
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('consumed', 'accepted', 'duplicate', 'suspense', 'rejected')),
    reason     TEXT NOT NULL DEFAULT '',
    records    BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic, partition, outcome, reason)
);

-- One row per committed batch: the audit trail of what was committed when.
CREATE TABLE committed_batches (
    id            BIGSERIAL PRIMARY KEY,
    group_id      TEXT NOT NULL,
    topic         TEXT NOT NULL,
    partition     INTEGER NOT NULL,
    from_offset   BIGINT NOT NULL,
    to_offset     BIGINT NOT NULL,
    records       INTEGER NOT NULL,
    accepted      INTEGER NOT NULL,
    duplicates    INTEGER NOT NULL,
    suspense      INTEGER NOT NULL,
    rejected      INTEGER NOT NULL,
    committed_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX committed_batches_partition ON committed_batches (group_id, topic, partition, from_offset);
