//! Writing one mediated batch: usage rows, suspense rows, rejects, counters, the batch
//! log and the partition's offset, all in the caller's transaction, each as one bulk
//! statement whatever the batch size: a binary `COPY` for the usage rows, an `UNNEST` of
//! arrays for the rest.

use super::caches::{KnownBuckets, RecentlyStored};
use super::offsets::{self, Advanced};
use super::rows::{self, UsageSource};
use super::StorageError;
use crate::domain::batch::{
    BatchSummary, HoldReason, PartitionBatch, RatedCdr, SourceMeta, Verdict,
};
use crate::domain::normalize::NormalizedCdr;
use crate::domain::reject::{RejectReason, Rejection};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use foldhash::HashSetExt;
use std::collections::HashSet;

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
    known: &KnownBuckets,
    new_usage: impl FnOnce(&[usize]) -> T,
) -> Result<Written<T>, StorageError> {
    let topic = batch.topic.as_str();
    let partition = batch.partition;

    // First, so that a stale batch does no other work and so that the row lock serializes
    // two writers of the same partition. It also says up to where a `replay --rerate`
    // asked for stored records to be priced again, and with which catalog at least.
    let Advanced::Moved {
        rerate_below,
        rerate_catalog_version,
    } = offsets::advance(
        tx,
        group,
        topic,
        partition,
        batch.from_offset,
        batch.to_offset,
    )
    .await?
    else {
        let stored = offsets::stored(&**tx, group, topic, Some(&[partition])).await?;
        return Ok(Written::Fenced {
            stored: stored.get(&partition).copied(),
        });
    };
    if let (Some(below), Some(needed)) = (rerate_below, rerate_catalog_version) {
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
                return Err(StorageError::Misuse(format!(
                    "record at offset {} reached storage unrated",
                    r.source.offset
                )));
            }
        }
    }

    // Records already stored as usage are duplicates; the rest is new. Usually nothing
    // is stored yet, so the new rows are copied in straight away: no ON CONFLICT (its
    // speculative insertion of each row costs more than the rare duplicate saves) and no
    // lookup first (the unique key checks every row anyway). Duplicates this process
    // committed lately are known without asking (`recent`). If a copied row turns out
    // stored all the same (an older duplicate, a replayed range), the copy is undone to
    // its savepoint and the batch is looked up, then copied again without what is
    // stored. A replay with --rerate needs to know what was stored before, so it always
    // looks up. Exactly-once holds either way: the partition's offset row lock
    // serializes writers of a partition, and a copy racing in through another partition
    // fails the copy on the unique key. Suspense is not checked here, on the hot path:
    // suspense resolution inserts with ON CONFLICT instead.
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
            offsets::rerate_done(tx, group, topic, partition).await?;
        }
        let again: Vec<(usize, &RatedCdr)> = stored_before
            .iter()
            .filter(|(i, _)| batch.records[*i].source.offset < below)
            .copied()
            .collect();
        if !again.is_empty() {
            let (rerated, customers) =
                super::rerate::rerate(tx, &with_sources(batch, &again)).await?;
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
    Ok(unless_stored(tx, constraint, copy).await?.is_some())
}

/// Run `write` under a savepoint: its result if it went in, None if it broke the unique
/// key `constraint` (the savepoint is rolled back and the transaction goes on).
pub(super) async fn unless_stored<T>(
    tx: &Transaction<'_>,
    constraint: &str,
    write: impl std::future::Future<Output = Result<T, StorageError>>,
) -> Result<Option<T>, StorageError> {
    tx.batch_execute(SAVEPOINT_COPY).await?;
    match write.await {
        Ok(done) => {
            tx.batch_execute(RELEASE_COPY).await?;
            Ok(Some(done))
        }
        Err(StorageError::Db(e))
            if e.as_db_error().is_some_and(|d| {
                d.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                    && d.constraint() == Some(constraint)
            }) =>
        {
            tx.batch_execute(ROLLBACK_COPY).await?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The savepoint `unless_stored` sets, keeps and rolls back to.
const SAVEPOINT_COPY: &str = "SAVEPOINT copy_new";
const RELEASE_COPY: &str = "RELEASE SAVEPOINT copy_new";
const ROLLBACK_COPY: &str = "ROLLBACK TO SAVEPOINT copy_new";

/// The unique keys of a usage row's record id (the ledger every insert into usage_events
/// fills: V14__usage_partitions.sql) and of a reject's source position (V1__spine.sql).
pub(super) const USAGE_ID_KEY: &str = "usage_ids_pkey";
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
    let rows: Vec<(&Rejection, &SourceMeta)> = rejected
        .iter()
        .map(|(i, r)| (*r, &batch.records[*i].source))
        .collect();
    let (topic, partition) = (batch.topic.as_str(), batch.partition);
    let copy = rows::copy_rejects(tx, topic, partition, &rows);
    if copied_unless_stored(tx, REJECT_POSITION_KEY, copy).await? {
        return Ok(offsets.iter().copied().collect());
    }
    rows::insert_rejects_if_new(tx, topic, partition, &rows).await
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

/// The new usage rows of a batch, written with a binary `COPY`: no ON CONFLICT, whose
/// speculative insertion of each row costs more than the rare duplicate saves. A row
/// stored already makes the unique key fail the copy.
async fn insert_usage(
    tx: &Transaction<'_>,
    batch: &PartitionBatch,
    rows: &[(usize, &RatedCdr)],
) -> Result<usize, StorageError> {
    rows::copy_usage(tx, &with_sources(batch, rows)).await
}

/// Rated records of `batch` with where each came from.
fn with_sources<'b>(
    batch: &'b PartitionBatch,
    rows: &[(usize, &'b RatedCdr)],
) -> Vec<(&'b RatedCdr, UsageSource<'b>)> {
    rows.iter()
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
        .collect()
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
        .map_err(|e| StorageError::Encode(format!("normalized record does not serialize: {e}")))?;
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
