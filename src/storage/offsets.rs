//! Stored consumer offsets: the position each group has durably reached per partition.
//! Every write to `consumer_offsets` is here: the claim of a new partition, the
//! compare-and-set of each batch, the end of a re-rating range, a replay's rewind and
//! the skip of a gap.

use super::StorageError;
use deadpool_postgres::Transaction;
use std::collections::BTreeMap;
use tokio_postgres::GenericClient;

/// What a batch's compare-and-set found.
pub enum Advanced {
    /// The stored offset was where the batch started and now is where it ends. Up to
    /// `rerate_below` (if any) a `replay --rerate` asked stored records to be priced
    /// again, with catalog version `rerate_catalog_version` at least.
    Moved {
        rerate_below: Option<i64>,
        rerate_catalog_version: Option<i32>,
    },
    /// Someone else moved the stored offset (a rebalance, a replay rewind, a zombie
    /// instance): nothing of the batch may be committed.
    Fenced,
}

/// Advance a partition's stored offset from `from` to `to` in the batch's transaction,
/// only if it is at `from`. Taking the row lock first also serializes two writers of
/// the same partition until the transaction ends.
pub async fn advance(
    tx: &Transaction<'_>,
    group: &str,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
) -> Result<Advanced, StorageError> {
    let cas = tx
        .prepare_cached(include_str!("sql/offsets_cas.sql"))
        .await?;
    Ok(
        match tx
            .query_opt(&cas, &[&group, &topic, &partition, &to, &from])
            .await?
        {
            Some(row) => Advanced::Moved {
                rerate_below: row.get(0),
                rerate_catalog_version: row.get(1),
            },
            None => Advanced::Fenced,
        },
    )
}

/// A batch reached the end of the range a `replay --rerate` asked to price again: later
/// batches skip what is stored, as usual.
pub async fn rerate_done(
    tx: &Transaction<'_>,
    group: &str,
    topic: &str,
    partition: i32,
) -> Result<(), StorageError> {
    let clear = tx
        .prepare_cached(include_str!("sql/rerate_done.sql"))
        .await?;
    tx.execute(&clear, &[&group, &topic, &partition]).await?;
    Ok(())
}

/// The stored next offset of each partition, creating a row at 0 for partitions never
/// seen, so that every later batch commit is a plain compare-and-set.
pub async fn claim(
    client: &impl GenericClient,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, StorageError> {
    client
        .execute(
            include_str!("sql/claim_offsets.sql"),
            &[&group, &topic, &partitions],
        )
        .await?;
    stored(client, group, topic, Some(partitions)).await
}

/// Stored offsets of a group on a topic, for some or all partitions.
pub async fn stored(
    client: &impl GenericClient,
    group: &str,
    topic: &str,
    partitions: Option<&[i32]>,
) -> Result<BTreeMap<i32, i64>, StorageError> {
    let rows = client
        .query(
            include_str!("sql/stored_offsets.sql"),
            &[&group, &topic, &partitions],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub use crate::domain::replay::StoredOffset;

/// Stored offsets of a group on a topic with their rerate bound, for some or all
/// partitions. With `for_update` the rows stay locked until the caller's transaction
/// ends: a daemon committing a batch of one of them waits, and then finds the offset it
/// expected gone.
pub async fn positions(
    client: &impl GenericClient,
    group: &str,
    topic: &str,
    partitions: Option<&[i32]>,
    for_update: bool,
) -> Result<BTreeMap<i32, StoredOffset>, StorageError> {
    let sql = if for_update {
        include_str!("sql/positions_for_update.sql")
    } else {
        include_str!("sql/positions.sql")
    };
    let rows = client.query(sql, &[&group, &topic, &partitions]).await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                StoredOffset {
                    next_offset: r.get(1),
                    rerate_below: r.get(2),
                },
            )
        })
        .collect())
}

/// One partition moved back by `cdrflow replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewind {
    pub partition: i32,
    /// The stored offset the move starts from; the row is only changed if it still holds it.
    pub from: i64,
    pub to: i64,
}

/// Move the stored offsets back (in the caller's transaction, on rows it has locked with
/// [`positions`]). With `rerate`, records below the old position are priced again when
/// they come back: `rerate_below` rises to it and never falls, and so does the catalog
/// version they must be priced with, to the active one. Returns the rows changed.
pub async fn rewind(
    client: &impl GenericClient,
    group: &str,
    topic: &str,
    moves: &[Rewind],
    rerate: bool,
) -> Result<u64, StorageError> {
    let partitions: Vec<i32> = moves.iter().map(|m| m.partition).collect();
    let from: Vec<i64> = moves.iter().map(|m| m.from).collect();
    let to: Vec<i64> = moves.iter().map(|m| m.to).collect();
    Ok(client
        .execute(
            include_str!("sql/rewind.sql"),
            &[&group, &topic, &partitions, &from, &to, &rerate],
        )
        .await?)
}

/// Records of a partition the broker deleted before the group read them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Gap {
    pub topic: String,
    pub partition: i32,
    pub from_offset: i64,
    pub to_offset: i64,
    pub detected_at: chrono::DateTime<chrono::Utc>,
}

/// Move the stored offset of `partition` from `from` (the first offset the broker no
/// longer has) to `to` (its log start), recording the range as a gap. False when the
/// stored offset was not at `from` any more: nothing moved, nothing recorded.
pub async fn skip_gap(
    client: &impl GenericClient,
    group: &str,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
) -> Result<bool, StorageError> {
    let recorded = client
        .execute(
            include_str!("sql/offsets_skip_gap.sql"),
            &[&group, &topic, &partition, &from, &to],
        )
        .await?;
    Ok(recorded == 1)
}

/// Every gap recorded for a group, oldest offset first.
pub async fn gaps(client: &impl GenericClient, group: &str) -> Result<Vec<Gap>, StorageError> {
    let rows = client
        .query(include_str!("sql/offset_gaps.sql"), &[&group])
        .await?;
    Ok(rows
        .iter()
        .map(|r| Gap {
            topic: r.get(0),
            partition: r.get(1),
            from_offset: r.get(2),
            to_offset: r.get(3),
            detected_at: r.get(4),
        })
        .collect())
}
