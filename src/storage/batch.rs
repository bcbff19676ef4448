//! Writing one mediated batch: usage rows, suspense rows, rejects, counters, the batch
//! log and the partition's offset, all in the caller's transaction, each as one bulk
//! statement whatever the batch size: a binary `COPY` for the usage rows, an `UNNEST` of
//! arrays for the rest.

use super::StorageError;
use crate::domain::batch::{BatchSummary, HoldReason, PartitionBatch, RatedCdr, Verdict};
use crate::domain::normalize::NormalizedCdr;
use crate::domain::reject::{RejectReason, Rejection};
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Transaction;
use foldhash::HashSetExt;
use rust_decimal::Decimal;
use std::collections::HashSet;
use std::fmt::Write as _;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

/// What writing a batch came to.
#[derive(Debug)]
pub enum Written<T> {
    /// Rows are written; the caller commits. `inserted` indexes the batch's records that
    /// became new usage rows (the only ones that may feed totals or be published);
    /// `early` is what the caller's `new_usage` returned.
    Staged {
        summary: BatchSummary,
        inserted: Vec<usize>,
        early: T,
        /// The new usage as added to the month-to-date buckets, for the accumulators.
        posted: super::billing::Posted,
    },
    /// The stored offset is not where the batch starts: someone else moved it (a
    /// rebalance, a replay rewind). Nothing may be committed; resume from `stored`.
    Fenced { stored: Option<i64> },
    /// Records a `replay --rerate` asked to price again were priced with catalog version
    /// `used`, older than `needed`, the one active when the replay was asked for. Nothing
    /// may be committed: the batch must be priced again with `needed` or a newer one.
    CatalogBehind { used: i32, needed: i32 },
}

/// Write `batch` in `tx`; record ids in `recent` are known to be stored, and so are the
/// bucket keys in `known` (`post_usage`). Once the new
/// usage rows are known (usually after they are copied in), `new_usage` is called with
/// their indexes, so that the caller can start work that overlaps the rest of the
/// transaction (publishing them) and wait for it before committing.
pub async fn write<T>(
    tx: &Transaction<'_>,
    group: &str,
    batch: &PartitionBatch,
    recent: &RecentlyStored,
    known: &super::billing::KnownBuckets,
    new_usage: impl FnOnce(&[usize]) -> T,
) -> Result<Written<T>, StorageError> {
    let topic = batch.topic.as_str();
    let partition = batch.partition;

    // First, so that a stale batch does no other work and so that the row lock serializes
    // two writers of the same partition. It also says up to where a `replay --rerate`
    // asked for stored records to be priced again, and with which catalog at least.
    let cas = tx
        .prepare_cached(include_str!("sql/offsets_cas.sql"))
        .await?;
    let Some(cas_row) = tx
        .query_opt(
            &cas,
            &[
                &group,
                &topic,
                &partition,
                &batch.to_offset,
                &batch.from_offset,
            ],
        )
        .await?
    else {
        let stored = super::offsets::stored(&**tx, group, topic, Some(&[partition])).await?;
        return Ok(Written::Fenced {
            stored: stored.get(&partition).copied(),
        });
    };
    let rerate_below: Option<i64> = cas_row.get(0);
    if let (Some(below), Some(needed)) = (rerate_below, cas_row.get::<_, Option<i32>>(1)) {
        if let Some(used) = priced_before(batch, below, needed) {
            return Ok(Written::CatalogBehind { used, needed });
        }
    }

    let mut summary = BatchSummary {
        consumed: batch.records.len() as u32,
        ..Default::default()
    };

    // Split the batch; an exact duplicate inside the batch is a duplicate like any other.
    let mut seen = foldhash::HashSet::with_capacity(batch.records.len());
    let mut usage: Vec<(usize, &RatedCdr)> = Vec::new();
    let mut held: Vec<(usize, &NormalizedCdr, &HoldReason)> = Vec::new();
    let mut rejected = Vec::new();
    for (i, r) in batch.records.iter().enumerate() {
        match &r.verdict {
            Verdict::Rated(x) if seen.insert(x.cdr.record_id.as_str()) => usage.push((i, x)),
            Verdict::Held(n, why) if seen.insert(n.record_id.as_str()) => held.push((i, n, why)),
            Verdict::Rated(_) | Verdict::Held(..) => summary.duplicates += 1,
            Verdict::Rejected(rej) => rejected.push((i, rej)),
            Verdict::Received | Verdict::Valid(_) | Verdict::Normalized(_) => {
                // Only rated, held or rejected records reach storage; anything else is a
                // wiring bug, and storing it as accepted would hide it.
                return Err(StorageError::Config(format!(
                    "record at offset {} reached storage unrated",
                    r.source.offset
                )));
            }
        }
    }

    // Records already stored as usage are duplicates; the rest is new. Usually nothing
    // is stored yet: the new rows are copied in straight away, without ON CONFLICT (whose
    // per-row speculative insertion measured 1.6 times slower in isolation) and without
    // looking the batch up first (the unique key checks every row anyway, and the lookup
    // cost a sixth of the transaction). Duplicates this process committed lately are
    // known without asking (`recent`). If a copied row turns out stored all the same (an
    // older duplicate, a replayed range), the copy is undone to its savepoint and the
    // batch is looked up, then copied again without what is stored. A replay with
    // --rerate needs to know what was stored before, so it always looks up. Exactly-once
    // holds either way: the partition's offset row lock serializes writers of a
    // partition, and a copy racing in through another partition fails the copy on the
    // unique key. (Checking suspense here as well cost 40 % of throughput; suspense
    // resolution inserts with ON CONFLICT instead.)
    type Rows<'r> = Vec<(usize, &'r RatedCdr)>;
    let (mut new, mut stored_before): (Rows, Rows) = if rerate_below.is_some() {
        (usage, Vec::new())
    } else {
        usage
            .into_iter()
            .partition(|(_, x)| !recent.contains(&x.cdr.record_id))
    };
    let copied = rerate_below.is_none()
        && !new.is_empty()
        && copied_unless_stored(tx, USAGE_ID_KEY, insert_usage(tx, batch, &new)).await?;
    if !copied && !new.is_empty() {
        let ids: Vec<&str> = new.iter().map(|(_, x)| x.cdr.record_id.as_str()).collect();
        let stored: HashSet<String> = tx
            .query(
                &tx.prepare_cached(include_str!("sql/existing_usage.sql"))
                    .await?,
                &[&ids],
            )
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        let (fresh, old): (Rows, Rows) = new
            .into_iter()
            .partition(|(_, x)| !stored.contains(&x.cdr.record_id));
        new = fresh;
        stored_before.extend(old);
    }
    let inserted: Vec<usize> = new.iter().map(|(i, _)| *i).collect();
    // Started before the rest of the transaction so that publishing overlaps it.
    let early = new_usage(&inserted);
    let mut posted = super::billing::Posted::default();
    if !new.is_empty() {
        if !copied {
            insert_usage(tx, batch, &new).await?;
        }
        let rows: Vec<&RatedCdr> = new.iter().map(|(_, x)| *x).collect();
        posted = super::billing::post_usage(tx, &rows, Some(known)).await?;
    }
    summary.accepted = inserted.len() as u32;
    summary.unverified_peers = new.iter().filter(|(_, x)| x.cdr.peer_unverified).count() as u32;
    summary.duplicates += stored_before.len() as u32;
    if let Some(below) = rerate_below {
        if below <= batch.to_offset {
            let clear = tx
                .prepare_cached(include_str!("sql/rerate_done.sql"))
                .await?;
            tx.execute(&clear, &[&group, &topic, &partition]).await?;
        }
        let again: Vec<&RatedCdr> = stored_before
            .iter()
            .filter(|(i, _)| batch.records[*i].source.offset < below)
            .map(|(_, x)| *x)
            .collect();
        if !again.is_empty() {
            let (rerated, customers) = super::rerate::rerate(tx, &again).await?;
            summary.rerated = rerated;
            posted.invalidated = customers;
        }
    }
    if !held.is_empty() {
        let new = insert_suspense(tx, batch, &held).await?;
        summary.suspense = new as u32;
        summary.duplicates += (held.len() - new) as u32;
    }
    if !rejected.is_empty() {
        let offsets: Vec<i64> = rejected
            .iter()
            .map(|(i, _)| batch.records[*i].source.offset)
            .collect();
        let stored = store_rejects(tx, batch, &rejected, &offsets).await?;
        // A reject already stored at this position (a replayed range) is not counted again.
        for ((_, r), offset) in rejected.iter().zip(&offsets) {
            if stored.contains(offset) {
                *summary.rejected.entry(r.reason).or_default() += 1;
            } else {
                summary.duplicates += 1;
            }
        }
    }

    add_counters(tx, group, batch, &summary).await?;
    let log = tx.prepare_cached(include_str!("sql/log_batch.sql")).await?;
    tx.execute(
        &log,
        &[
            &group,
            &topic,
            &partition,
            &batch.from_offset,
            &batch.to_offset,
            &(summary.consumed as i32),
            &(summary.accepted as i32),
            &(summary.duplicates as i32),
            &(summary.suspense as i32),
            &(summary.rejected_total() as i32),
            &(summary.unverified_peers as i32),
        ],
    )
    .await?;
    Ok(Written::Staged {
        summary,
        inserted,
        early,
        posted,
    })
}

/// The oldest catalog version older than `needed` that priced a record of `batch` below
/// offset `below` (the range a rerate replay prices again), if any.
fn priced_before(batch: &PartitionBatch, below: i64, needed: i32) -> Option<i32> {
    batch
        .records
        .iter()
        .filter(|r| r.source.offset < below)
        .filter_map(|r| match &r.verdict {
            Verdict::Rated(x) if x.catalog_version < needed => Some(x.catalog_version),
            _ => None,
        })
        .min()
}

/// Run `copy` under a savepoint: true if all of it went in, false if it broke the unique
/// key `constraint` (a row stored already), in which case none of it is (the savepoint is
/// rolled back and the transaction goes on).
pub(super) async fn copied_unless_stored(
    tx: &Transaction<'_>,
    constraint: &str,
    copy: impl std::future::Future<Output = Result<usize, StorageError>>,
) -> Result<bool, StorageError> {
    tx.batch_execute("SAVEPOINT copy_new").await?;
    match copy.await {
        Ok(_) => {
            tx.batch_execute("RELEASE SAVEPOINT copy_new").await?;
            Ok(true)
        }
        Err(StorageError::Db(e))
            if e.as_db_error().is_some_and(|d| {
                d.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                    && d.constraint() == Some(constraint)
            }) =>
        {
            tx.batch_execute("ROLLBACK TO SAVEPOINT copy_new").await?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The unique keys of a usage row's record id and of a reject's source position
/// (V1__spine.sql).
const USAGE_ID_KEY: &str = "usage_events_pkey";
const REJECT_POSITION_KEY: &str = "rejected_records_src_topic_src_partition_src_offset_key";

/// Store `rejected` (at `offsets`), returning the offsets stored now; one already stored
/// at its position (a replayed range) is not. Like usage rows, they are copied in under a
/// savepoint first (a fresh range holds no stored reject, and the copy skips the insert's
/// conflict check of each row), and inserted with `ON CONFLICT DO NOTHING` only when the
/// copy meets one.
async fn store_rejects(
    tx: &Transaction<'_>,
    batch: &PartitionBatch,
    rejected: &[(usize, &Rejection)],
    offsets: &[i64],
) -> Result<HashSet<i64>, StorageError> {
    if copied_unless_stored(tx, REJECT_POSITION_KEY, copy_rejects(tx, batch, rejected)).await? {
        return Ok(offsets.iter().copied().collect());
    }
    let stmt = tx
        .prepare_cached(include_str!("sql/insert_rejects.sql"))
        .await?;
    let reasons: Vec<&str> = rejected.iter().map(|(_, r)| r.reason.as_str()).collect();
    let details: Vec<&str> = rejected.iter().map(|(_, r)| r.detail.as_str()).collect();
    let raws: Vec<&[u8]> = rejected
        .iter()
        .map(|(i, _)| batch.records[*i].source.payload.as_slice())
        .collect();
    let keys: Vec<Option<&[u8]>> = rejected
        .iter()
        .map(|(i, _)| batch.records[*i].source.key.as_deref())
        .collect();
    let times: Vec<Option<DateTime<Utc>>> = rejected
        .iter()
        .map(|(i, _)| batch.records[*i].source.timestamp)
        .collect();
    let (topic, partition) = (batch.topic.as_str(), batch.partition);
    Ok(tx
        .query(
            &stmt,
            &[
                &offsets, &reasons, &details, &raws, &keys, &times, &topic, &partition,
            ],
        )
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect())
}

/// Copy `rejected` into `rejected_records` with a binary `COPY`.
async fn copy_rejects(
    tx: &Transaction<'_>,
    batch: &PartitionBatch,
    rejected: &[(usize, &Rejection)],
) -> Result<usize, StorageError> {
    let stmt = tx
        .prepare_cached(
            "COPY rejected_records (src_offset, reason, detail, raw, kafka_key, kafka_ts, \
             src_topic, src_partition) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let sink = tx.copy_in(&stmt).await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::BYTEA,
            Type::BYTEA,
            Type::TIMESTAMPTZ,
            Type::TEXT,
            Type::INT4,
        ],
    );
    futures::pin_mut!(writer);
    let (topic, partition) = (batch.topic.as_str(), batch.partition);
    for (i, r) in rejected {
        let source = &batch.records[*i].source;
        writer
            .as_mut()
            .write(&[
                &source.offset,
                &r.reason.as_str(),
                &r.detail.as_str(),
                &source.payload.as_slice(),
                &source.key.as_deref(),
                &source.timestamp,
                &topic,
                &partition,
            ])
            .await?;
    }
    Ok(writer.finish().await? as usize)
}

/// Record ids this process saw committed as usage lately, at most `capacity` of them,
/// oldest forgotten first. Usage rows are never deleted, so an id found here is stored:
/// its record is a duplicate without asking Postgres. An id not found here may still be
/// stored; the insert finds out. Duplicates on a network mostly repeat a record sent
/// moments before (a retransmission), which this catches.
pub struct RecentlyStored {
    ids: foldhash::HashSet<std::sync::Arc<str>>,
    order: std::collections::VecDeque<std::sync::Arc<str>>,
    capacity: usize,
}

impl RecentlyStored {
    pub fn new(capacity: usize) -> Self {
        RecentlyStored {
            ids: foldhash::HashSet::with_capacity(capacity.min(1 << 16)),
            order: std::collections::VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
        }
    }

    pub fn contains(&self, record_id: &str) -> bool {
        self.ids.contains(record_id)
    }

    /// Remember ids whose rows were committed (never before the commit succeeded).
    pub fn remember<'a>(&mut self, committed: impl IntoIterator<Item = &'a str>) {
        if self.capacity == 0 {
            return;
        }
        for id in committed {
            if self.ids.contains(id) {
                continue;
            }
            if self.order.len() == self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
            let id: std::sync::Arc<str> = id.into();
            self.ids.insert(id.clone());
            self.order.push_back(id);
        }
    }
}

/// Insert every normalized record of `batch` as usage, with nothing else around it: the
/// benchmark's "bare bulk insert" limit, through the very statement `write` uses.
pub async fn insert_accepted(
    tx: &Transaction<'_>,
    batch: &PartitionBatch,
) -> Result<usize, StorageError> {
    let rows: Vec<(usize, &RatedCdr)> = batch
        .records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.verdict {
            Verdict::Rated(x) => Some((i, &**x)),
            _ => None,
        })
        .collect();
    insert_usage(tx, batch, &rows).await
}

/// The new usage rows of a batch, written with a binary `COPY`: no ON CONFLICT (whose
/// per-row speculative insertion measured 1.6 times slower), and no arrays to build and
/// unpack. It replaced an `INSERT … SELECT FROM UNNEST` of 30 arrays, the batch
/// transaction's largest statement: Postgres CPU per record fell about a tenth. A row
/// stored already makes the unique key fail the copy.
async fn insert_usage(
    tx: &Transaction<'_>,
    batch: &PartitionBatch,
    rows: &[(usize, &RatedCdr)],
) -> Result<usize, StorageError> {
    let sources: Vec<(&RatedCdr, UsageSource)> = rows
        .iter()
        .map(|(i, x)| {
            let source = &batch.records[*i].source;
            (
                *x,
                UsageSource {
                    topic: batch.topic.as_str(),
                    partition: batch.partition,
                    offset: source.offset,
                    kafka_ts: source.timestamp,
                },
            )
        })
        .collect();
    copy_usage(tx, "usage_events", &sources).await
}

/// Insert rated records as usage unless their record id is stored already, and return the
/// ids inserted: for suspense resolution, where the same event may have reached usage by
/// the batch path meanwhile. The rows are copied into a temporary table, then inserted
/// from it with ON CONFLICT DO NOTHING, so that both paths write a row the same way.
pub(crate) async fn insert_usage_if_new(
    tx: &Transaction<'_>,
    rows: &[(&RatedCdr, UsageSource<'_>)],
) -> Result<HashSet<String>, StorageError> {
    tx.batch_execute(
        "CREATE TEMP TABLE usage_resolved (LIKE usage_events INCLUDING DEFAULTS) ON COMMIT DROP",
    )
    .await?;
    copy_usage(tx, "usage_resolved", rows).await?;
    let columns = usage_column_list();
    let insert = format!(
        "INSERT INTO usage_events ({columns}) SELECT {columns} FROM usage_resolved
         ON CONFLICT (record_id) DO NOTHING RETURNING record_id"
    );
    Ok(tx
        .query(&insert, &[])
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect())
}

/// Where a usage row came from.
pub(crate) struct UsageSource<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) kafka_ts: Option<DateTime<Utc>>,
}

/// How many columns a usage row has: the length of `USAGE_COLUMNS` and of the values
/// `copy_usage` writes, so that the compiler holds the two together.
const USAGE_WIDTH: usize = 33;

/// The columns `copy_usage` writes and their types, in the order of its values: one
/// list, so that a column cannot drift from its type.
const USAGE_COLUMNS: [(&str, Type); USAGE_WIDTH] = [
    ("record_id", Type::TEXT),
    ("customer_id", Type::INT8),
    ("record_type", Type::TEXT),
    ("msisdn", Type::TEXT),
    ("peer_msisdn", Type::TEXT),
    ("peer_country", Type::TEXT),
    ("peer_class", Type::TEXT),
    ("peer_unverified", Type::BOOL),
    ("event_time", Type::TIMESTAMPTZ),
    ("duration_sec", Type::INT4),
    ("volume_bytes", Type::INT8),
    ("session_duration_sec", Type::INT4),
    ("cell_id", Type::TEXT),
    ("city", Type::TEXT),
    ("region", Type::TEXT),
    ("technology", Type::TEXT),
    ("roaming_country", Type::TEXT),
    ("src_offset", Type::INT8),
    ("kafka_ts", Type::TIMESTAMPTZ),
    ("period", Type::DATE),
    ("plan", Type::TEXT),
    ("tariff_id", Type::TEXT),
    ("zone", Type::TEXT),
    ("band", Type::TEXT),
    ("bands", Type::TEXT_ARRAY),
    ("band_units", Type::INT8_ARRAY),
    ("band_amounts", Type::NUMERIC_ARRAY),
    ("units", Type::INT8),
    ("amount", Type::NUMERIC),
    ("cost", Type::NUMERIC),
    ("catalog_version", Type::INT4),
    ("src_topic", Type::TEXT),
    ("src_partition", Type::INT4),
];

/// The column list of `USAGE_COLUMNS`, for SQL.
fn usage_column_list() -> String {
    USAGE_COLUMNS.map(|(name, _)| name).join(", ")
}

/// Copy rated records into `table` (`usage_events`, or a table like it) with a binary
/// `COPY`: the one place a rated record becomes a usage row.
async fn copy_usage(
    tx: &Transaction<'_>,
    table: &str,
    rows: &[(&RatedCdr, UsageSource<'_>)],
) -> Result<usize, StorageError> {
    let copy = format!(
        "COPY {table} ({}) FROM STDIN (FORMAT binary)",
        usage_column_list()
    );
    // A temporary table is made anew by each transaction: its statement is not kept.
    let stmt = if table == "usage_events" {
        tx.prepare_cached(&copy).await?
    } else {
        tx.prepare(&copy).await?
    };
    let sink = tx.copy_in(&stmt).await?;
    let types = USAGE_COLUMNS.map(|(_, t)| t);
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures::pin_mut!(writer);
    for (x, source) in rows {
        let (c, r) = (&x.cdr, &x.rating);
        let split = r.parts.len() > 1;
        let bands = split.then(|| r.parts.iter().map(|p| p.band.as_str()).collect::<Vec<_>>());
        let band_units = split.then(|| r.parts.iter().map(|p| p.units).collect::<Vec<_>>());
        let band_amounts = split.then(|| r.parts.iter().map(|p| p.amount).collect::<Vec<_>>());
        let values: [&(dyn ToSql + Sync); USAGE_WIDTH] = [
            &c.record_id.as_str(),
            &x.customer_id,
            &c.record_type.as_str(),
            &c.subscriber.as_str(),
            &c.peer.as_ref().map(|p| p.as_str()),
            &c.peer_country.as_deref(),
            &c.peer_class.map(|p| p.as_str()),
            &c.peer_unverified,
            &c.event_time,
            &c.duration_sec,
            &c.volume_bytes,
            &c.session_duration_sec,
            &c.cell_id.as_str(),
            &c.city.as_deref(),
            &c.region.as_str(),
            &c.technology.as_str(),
            &c.roaming_country.as_deref(),
            &source.offset,
            &source.kafka_ts,
            &r.period,
            &r.plan.as_str(),
            &r.tariff_id.as_str(),
            &r.zone.as_str(),
            &r.parts.first().map(|p| p.band.as_str()),
            &bands,
            &band_units,
            &band_amounts,
            &r.units,
            &r.amount,
            &r.cost,
            &x.catalog_version,
            &source.topic,
            &source.partition,
        ];
        writer.as_mut().write(&values).await?;
    }
    Ok(writer.finish().await? as usize)
}

/// The rating of usage rows as column arrays: the SET list of a re-rating update. A split call's parts travel as array literals
/// (`{peak,offpeak}`), cast per row in SQL: band names are plain words (the catalog
/// checks it) and amounts are decimals, so no quoting is needed. An event in one band
/// has no parts arrays, only its `band`.
pub(crate) struct RatingColumns<'a> {
    pub(crate) period: Vec<NaiveDate>,
    plan: Vec<&'a str>,
    tariff_id: Vec<&'a str>,
    zone: Vec<&'a str>,
    band: Vec<Option<&'a str>>,
    bands: Vec<Option<String>>,
    band_units: Vec<Option<String>>,
    band_amounts: Vec<Option<String>>,
    units: Vec<i64>,
    pub(crate) amount: Vec<Decimal>,
    cost: Vec<Decimal>,
    catalog_version: Vec<i32>,
}

impl<'a> RatingColumns<'a> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        RatingColumns {
            period: Vec::with_capacity(n),
            plan: Vec::with_capacity(n),
            tariff_id: Vec::with_capacity(n),
            zone: Vec::with_capacity(n),
            band: Vec::with_capacity(n),
            bands: Vec::with_capacity(n),
            band_units: Vec::with_capacity(n),
            band_amounts: Vec::with_capacity(n),
            units: Vec::with_capacity(n),
            amount: Vec::with_capacity(n),
            cost: Vec::with_capacity(n),
            catalog_version: Vec::with_capacity(n),
        }
    }

    pub(crate) fn push(&mut self, x: &'a RatedCdr) {
        let r = &x.rating;
        self.period.push(r.period);
        self.plan.push(r.plan.as_str());
        self.tariff_id.push(r.tariff_id.as_str());
        self.zone.push(r.zone.as_str());
        self.band.push(r.parts.first().map(|p| p.band.as_str()));
        let split = r.parts.len() > 1;
        self.bands
            .push(split.then(|| array_literal(r.parts.iter().map(|p| p.band.as_str()))));
        self.band_units
            .push(split.then(|| array_literal(r.parts.iter().map(|p| p.units))));
        self.band_amounts
            .push(split.then(|| array_literal(r.parts.iter().map(|p| p.amount))));
        self.units.push(r.units);
        self.amount.push(r.amount);
        self.cost.push(r.cost);
        self.catalog_version.push(x.catalog_version);
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 12] {
        [
            &self.period,
            &self.plan,
            &self.tariff_id,
            &self.zone,
            &self.band,
            &self.bands,
            &self.band_units,
            &self.band_amounts,
            &self.units,
            &self.amount,
            &self.cost,
            &self.catalog_version,
        ]
    }
}

fn array_literal<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{item}");
    }
    out.push('}');
    out
}

async fn insert_suspense(
    tx: &Transaction<'_>,
    batch: &PartitionBatch,
    rows: &[(usize, &NormalizedCdr, &HoldReason)],
) -> Result<usize, StorageError> {
    let stmt = tx
        .prepare_cached(include_str!("sql/insert_suspense.sql"))
        .await?;
    let ids: Vec<&str> = rows.iter().map(|(_, c, _)| c.record_id.as_str()).collect();
    let msisdns: Vec<&str> = rows.iter().map(|(_, c, _)| c.subscriber.as_str()).collect();
    let times: Vec<DateTime<Utc>> = rows.iter().map(|(_, c, _)| c.event_time).collect();
    let normalized: Vec<serde_json::Value> = rows
        .iter()
        .map(|(_, c, _)| serde_json::to_value(c))
        .collect::<Result<_, _>>()
        .map_err(|e| StorageError::Config(format!("normalized record does not serialize: {e}")))?;
    let raws: Vec<&[u8]> = rows
        .iter()
        .map(|(i, _, _)| batch.records[*i].source.payload.as_slice())
        .collect();
    let offsets: Vec<i64> = rows
        .iter()
        .map(|(i, _, _)| batch.records[*i].source.offset)
        .collect();
    let reasons: Vec<&str> = rows.iter().map(|(_, _, why)| why.as_str()).collect();
    let new = tx
        .query(
            &stmt,
            &[
                &ids,
                &msisdns,
                &times,
                &normalized,
                &raws,
                &offsets,
                &reasons,
                &batch.topic,
                &batch.partition,
            ],
        )
        .await?;
    Ok(new.len())
}

async fn add_counters(
    tx: &Transaction<'_>,
    group: &str,
    batch: &PartitionBatch,
    s: &BatchSummary,
) -> Result<(), StorageError> {
    let mut outcome = vec!["consumed", "accepted", "duplicate", "suspense"];
    let mut reason = vec!["", "", "", ""];
    let mut records = vec![
        s.consumed as i64,
        s.accepted as i64,
        s.duplicates as i64,
        s.suspense as i64,
    ];
    for (r, n) in &s.rejected {
        outcome.push("rejected");
        reason.push(RejectReason::as_str(*r));
        records.push(*n as i64);
    }
    let stmt = tx
        .prepare_cached(include_str!("sql/add_counters.sql"))
        .await?;
    tx.execute(
        &stmt,
        &[
            &group,
            &batch.topic,
            &batch.partition,
            &outcome,
            &reason,
            &records,
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::RecentlyStored;

    #[test]
    fn recently_stored_forgets_the_oldest_beyond_its_capacity() {
        let mut recent = RecentlyStored::new(3);
        recent.remember(["a", "b", "c"]);
        assert!(["a", "b", "c"].iter().all(|id| recent.contains(id)));
        // Seen again: not a second entry, so it does not push another out.
        recent.remember(["b"]);
        assert!(recent.contains("a"));
        recent.remember(["d"]);
        assert!(!recent.contains("a"), "the oldest goes first");
        assert!(["b", "c", "d"].iter().all(|id| recent.contains(id)));
        assert!(!recent.contains("e"));
    }

    #[test]
    fn recently_stored_of_no_capacity_knows_nothing() {
        let mut recent = RecentlyStored::new(0);
        recent.remember(["a"]);
        assert!(!recent.contains("a"));
    }
}
