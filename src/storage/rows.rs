//! The rows cdrflow writes in bulk, each described once. A column's name, its Postgres
//! type and the value it takes from a record sit on one line of `row!`; every statement
//! that writes the row is derived from those lines: the binary `COPY` of new usage, the
//! staging table and insert of resolved suspense, the update of a re-rating, and a
//! reject's `COPY` and insert. Adding a column is one line here and a migration.

use super::StorageError;
use crate::domain::batch::RatedCdr;
use crate::domain::batch::SourceMeta as Source;
use crate::domain::reject::Rejection;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use rust_decimal::Decimal;
use std::pin::Pin;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

/// One column of a stored row.
pub(super) struct Column {
    pub(super) name: &'static str,
    pub(super) ty: Type,
    /// A usage column that pricing decides: set again when an event is priced again.
    pub(super) rating: bool,
}

/// Declares a stored row: its columns, in the order a `COPY` writes them, and a function
/// that writes one row's values (all of them, or those `keep` indexes) to a binary copy.
macro_rules! row {
    (
        $(#[$meta:meta])*
        $columns:ident, fn $write:ident($($arg:ident: $argty:ty),*) {
            $($name:ident: $ty:ident $([$rating:ident])? = $value:expr,)*
        }
    ) => {
        $(#[$meta])*
        pub(super) const $columns: &[Column] = &[
            $(Column { name: stringify!($name), ty: Type::$ty, rating: row!(@rating $($rating)?) },)*
        ];

        async fn $write(
            writer: Pin<&mut BinaryCopyInWriter>,
            keep: Option<&[usize]>,
            $($arg: $argty),*
        ) -> Result<(), tokio_postgres::Error> {
            let values = [$(&$value as &(dyn ToSql + Sync)),*];
            match keep {
                None => writer.write(&values).await,
                Some(keep) => {
                    let kept: Vec<&(dyn ToSql + Sync)> = keep.iter().map(|i| values[*i]).collect();
                    writer.write(&kept).await
                }
            }
        }
    };
    (@rating rating) => { true };
    (@rating) => { false };
}

/// Where a usage row came from.
#[derive(Clone, Copy)]
pub(crate) struct UsageSource<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) kafka_ts: Option<DateTime<Utc>>,
}

/// A call that crosses a band boundary keeps its parts in three arrays; an event in one
/// band has none, only its `band`.
struct Parts<'a> {
    bands: Option<Vec<&'a str>>,
    units: Option<Vec<i64>>,
    amounts: Option<Vec<Decimal>>,
}

impl<'a> Parts<'a> {
    fn of(x: &'a RatedCdr) -> Self {
        let parts = &x.rating.parts;
        let split = parts.len() > 1;
        Parts {
            bands: split.then(|| parts.iter().map(|p| p.band.as_str()).collect()),
            units: split.then(|| parts.iter().map(|p| p.units).collect()),
            amounts: split.then(|| parts.iter().map(|p| p.amount).collect()),
        }
    }
}

row! {
    /// `usage_events`: one rated event. `[rating]` marks what a re-rating sets again.
    USAGE, fn write_usage(x: &RatedCdr, source: &UsageSource<'_>, parts: &Parts<'_>) {
        record_id: TEXT = x.cdr.record_id.as_str(),
        customer_id: INT8 = x.customer_id,
        record_type: TEXT = x.cdr.record_type.as_str(),
        msisdn: TEXT = x.cdr.subscriber.as_str(),
        peer_msisdn: TEXT = x.cdr.peer.as_ref().map(|p| p.as_str()),
        peer_country: TEXT = x.cdr.peer_country.as_deref(),
        peer_class: TEXT = x.cdr.peer_class.map(|p| p.as_str()),
        peer_unverified: BOOL = x.cdr.peer_unverified,
        event_time: TIMESTAMPTZ = x.cdr.event_time,
        duration_sec: INT4 = x.cdr.duration_sec,
        volume_bytes: INT8 = x.cdr.volume_bytes,
        session_duration_sec: INT4 = x.cdr.session_duration_sec,
        cell_id: TEXT = x.cdr.cell_id.as_str(),
        city: TEXT = x.cdr.city.as_deref(),
        region: TEXT = x.cdr.region.as_str(),
        technology: TEXT = x.cdr.technology.as_str(),
        roaming_country: TEXT = x.cdr.roaming_country.as_deref(),
        src_offset: INT8 = source.offset,
        kafka_ts: TIMESTAMPTZ = source.kafka_ts,
        period: DATE [rating] = x.rating.period,
        plan: TEXT [rating] = x.rating.plan.as_str(),
        tariff_id: TEXT [rating] = x.rating.tariff_id.as_str(),
        zone: TEXT [rating] = x.rating.zone.as_str(),
        band: TEXT [rating] = x.rating.parts.first().map(|p| p.band.as_str()),
        bands: TEXT_ARRAY [rating] = parts.bands,
        band_units: INT8_ARRAY [rating] = parts.units,
        band_amounts: NUMERIC_ARRAY [rating] = parts.amounts,
        units: INT8 [rating] = x.rating.units,
        amount: NUMERIC [rating] = x.rating.amount,
        cost: NUMERIC [rating] = x.rating.cost,
        catalog_version: INT4 [rating] = x.catalog_version,
        src_topic: TEXT = source.topic,
        src_partition: INT4 = source.partition,
    }
}

row! {
    /// `rejected_records`: a record refused with its reason, stored as it came.
    REJECT, fn write_reject(r: &Rejection, source: &Source, topic: &str, partition: i32) {
        src_offset: INT8 = source.offset,
        reason: TEXT = r.reason.as_str(),
        detail: TEXT = r.detail.as_str(),
        raw: BYTEA = source.payload.as_slice(),
        kafka_key: BYTEA = source.key.as_deref(),
        kafka_ts: TIMESTAMPTZ = source.timestamp,
        src_topic: TEXT = topic,
        src_partition: INT4 = partition,
    }
}

/// The comma-separated names of `columns`.
pub(super) fn names<'c>(columns: impl IntoIterator<Item = &'c Column>) -> String {
    columns
        .into_iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The indexes of the usage columns a re-rating writes: the record id and the rating.
fn rating_indexes() -> Vec<usize> {
    USAGE
        .iter()
        .enumerate()
        .filter(|(_, c)| c.rating || c.name == "record_id")
        .map(|(i, _)| i)
        .collect()
}

/// A temporary table with `columns` of `like`, gone at the end of the transaction; it
/// is made anew by each transaction, so its statements are not kept.
async fn stage(
    tx: &Transaction<'_>,
    name: &str,
    like: &str,
    columns: &str,
) -> Result<(), StorageError> {
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE {name} ON COMMIT DROP AS SELECT {columns} FROM {like} WITH NO DATA"
    ))
    .await?;
    Ok(())
}

/// Start a binary `COPY` of `columns` into `table`; a statement into a permanent table
/// is kept for the connection.
async fn copy_in(
    tx: &Transaction<'_>,
    table: &str,
    columns: &[&Column],
    keep_statement: bool,
) -> Result<BinaryCopyInWriter, StorageError> {
    let copy = format!(
        "COPY {table} ({}) FROM STDIN (FORMAT binary)",
        names(columns.iter().copied())
    );
    let stmt = if keep_statement {
        tx.prepare_cached(&copy).await?
    } else {
        tx.prepare(&copy).await?
    };
    let types: Vec<Type> = columns.iter().map(|c| c.ty.clone()).collect();
    Ok(BinaryCopyInWriter::new(tx.copy_in(&stmt).await?, &types))
}

/// Copy rated records into `usage_events` with a binary `COPY`: the one place a rated
/// record becomes a usage row. A row stored already makes the ledger's unique key fail the
/// copy. The rows go straight into their months' partitions (made first if missing),
/// with the ids and report marks that `usage_events`' insert triggers write for a
/// statement naming it: those triggers have transition tables, with which PostgreSQL
/// copies into a partitioned table one row at a time.
pub(super) async fn copy_usage(
    tx: &Transaction<'_>,
    rows: &[(&RatedCdr, UsageSource<'_>)],
) -> Result<usize, StorageError> {
    let mut months: std::collections::BTreeMap<chrono::NaiveDate, Vec<_>> = Default::default();
    for &(x, source) in rows {
        months.entry(x.rating.period).or_default().push((x, source));
    }
    super::retention::make_partitions(tx, months.keys().copied()).await?;
    let ids = tx
        .prepare_cached("COPY usage_ids (record_id, period) FROM STDIN (FORMAT binary)")
        .await?;
    let writer = BinaryCopyInWriter::new(tx.copy_in(&ids).await?, &[Type::TEXT, Type::DATE]);
    futures::pin_mut!(writer);
    for (x, _) in rows {
        writer
            .as_mut()
            .write(&[&x.cdr.record_id.as_str(), &x.rating.period])
            .await?;
    }
    writer.finish().await?;
    let mut copied = 0;
    for (period, rows) in &months {
        let partition = format!("usage_events_{}", period.format("%Y_%m"));
        copied += copy_usage_into(tx, &partition, true, rows).await?;
    }
    let periods: Vec<chrono::NaiveDate> = months.into_keys().collect();
    let mark = tx
        .prepare_cached("INSERT INTO report_dirty_periods (period) SELECT unnest($1::date[])")
        .await?;
    tx.execute(&mark, &[&periods]).await?;
    Ok(copied)
}

async fn copy_usage_into(
    tx: &Transaction<'_>,
    table: &str,
    keep_statement: bool,
    rows: &[(&RatedCdr, UsageSource<'_>)],
) -> Result<usize, StorageError> {
    let columns: Vec<&Column> = USAGE.iter().collect();
    let writer = copy_in(tx, table, &columns, keep_statement).await?;
    futures::pin_mut!(writer);
    for (x, source) in rows {
        write_usage(writer.as_mut(), None, x, source, &Parts::of(x)).await?;
    }
    Ok(writer.finish().await? as usize)
}

/// Insert rated records as usage unless their record id is stored already, and return the
/// ids inserted: for suspense resolution, where the same event may have reached usage by
/// the batch path meanwhile. The rows are copied into a staging table, then inserted from
/// it unless the ledger of stored ids has them, so that both paths write a row the same
/// way. A writer that stores one of the ids between the look-up and the insert makes the
/// insert fail on the ledger's key once it commits: the insert is then made again.
pub(super) async fn insert_usage_if_new(
    tx: &Transaction<'_>,
    rows: &[(&RatedCdr, UsageSource<'_>)],
) -> Result<std::collections::HashSet<String>, StorageError> {
    super::retention::make_partitions(tx, rows.iter().map(|(x, _)| x.rating.period)).await?;
    let columns = names(USAGE);
    stage(tx, "usage_resolved", "usage_events", &columns).await?;
    copy_usage_into(tx, "usage_resolved", false, rows).await?;
    let insert = format!(
        "INSERT INTO usage_events ({columns})
         SELECT DISTINCT ON (record_id) {columns} FROM usage_resolved s
          WHERE NOT EXISTS (SELECT FROM usage_ids i WHERE i.record_id = s.record_id)
         RETURNING record_id"
    );
    loop {
        let attempt = async { Ok(tx.query(&insert, &[]).await?) };
        let key = super::batch::USAGE_ID_KEY;
        if let Some(inserted) = super::batch::unless_stored(tx, key, attempt).await? {
            return Ok(inserted.into_iter().map(|r| r.get(0)).collect());
        }
    }
}

/// Insert the rows of `staged` into `table` unless its unique `key` has them already,
/// and return the `returning` column of those inserted.
async fn insert_staged<T>(
    tx: &Transaction<'_>,
    table: &str,
    staged: &str,
    columns: &str,
    key: &str,
    returning: &str,
) -> Result<std::collections::HashSet<T>, StorageError>
where
    T: for<'r> tokio_postgres::types::FromSql<'r> + Eq + std::hash::Hash,
{
    let insert = format!(
        "INSERT INTO {table} ({columns}) SELECT {columns} FROM {staged}
         ON CONFLICT ({key}) DO NOTHING RETURNING {returning}"
    );
    Ok(tx
        .query(&insert, &[])
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect())
}

/// Set the rating columns of stored usage rows to those of `rows` (matched by record id),
/// through a staging table that a binary `COPY` fills.
pub(super) async fn update_rating(
    tx: &Transaction<'_>,
    rows: &[(&RatedCdr, UsageSource<'_>)],
) -> Result<u64, StorageError> {
    let keep = rating_indexes();
    let columns: Vec<&Column> = keep.iter().map(|i| &USAGE[*i]).collect();
    stage(
        tx,
        "usage_rerated",
        "usage_events",
        &names(columns.iter().copied()),
    )
    .await?;
    let writer = copy_in(tx, "usage_rerated", &columns, false).await?;
    futures::pin_mut!(writer);
    for (x, source) in rows {
        write_usage(writer.as_mut(), Some(&keep), x, source, &Parts::of(x)).await?;
    }
    writer.finish().await?;
    let set = columns
        .iter()
        .filter(|c| c.rating)
        .map(|c| format!("{0} = t.{0}", c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let update = format!(
        "UPDATE usage_events u SET {set} FROM usage_rerated t WHERE u.record_id = t.record_id"
    );
    Ok(tx.execute(&update, &[]).await?)
}

/// Copy rejects into `rejected_records` with a binary `COPY`. A reject stored already at
/// its position makes the unique key fail the copy.
pub(super) async fn copy_rejects(
    tx: &Transaction<'_>,
    topic: &str,
    partition: i32,
    rows: &[(&Rejection, &Source)],
) -> Result<usize, StorageError> {
    copy_rejects_into(tx, "rejected_records", true, topic, partition, rows).await
}

async fn copy_rejects_into(
    tx: &Transaction<'_>,
    table: &str,
    keep_statement: bool,
    topic: &str,
    partition: i32,
    rows: &[(&Rejection, &Source)],
) -> Result<usize, StorageError> {
    let columns: Vec<&Column> = REJECT.iter().collect();
    let writer = copy_in(tx, table, &columns, keep_statement).await?;
    futures::pin_mut!(writer);
    for (r, source) in rows {
        write_reject(writer.as_mut(), None, r, source, topic, partition).await?;
    }
    Ok(writer.finish().await? as usize)
}

/// Insert rejects unless one is stored already at its position, and return the offsets
/// inserted (a replayed range finds its rejects stored).
pub(super) async fn insert_rejects_if_new(
    tx: &Transaction<'_>,
    topic: &str,
    partition: i32,
    rows: &[(&Rejection, &Source)],
) -> Result<std::collections::HashSet<i64>, StorageError> {
    let columns = names(REJECT);
    stage(tx, "rejects_staged", "rejected_records", &columns).await?;
    copy_rejects_into(tx, "rejects_staged", false, topic, partition, rows).await?;
    insert_staged(
        tx,
        "rejected_records",
        "rejects_staged",
        &columns,
        "src_topic, src_partition, src_offset",
        "src_offset",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rerating_sets_the_pricing_columns_and_nothing_that_came_with_the_record() {
        let set: Vec<&str> = USAGE.iter().filter(|c| c.rating).map(|c| c.name).collect();
        assert_eq!(
            set,
            [
                "period",
                "plan",
                "tariff_id",
                "zone",
                "band",
                "bands",
                "band_units",
                "band_amounts",
                "units",
                "amount",
                "cost",
                "catalog_version"
            ]
        );
        let kept: Vec<&str> = rating_indexes().iter().map(|i| USAGE[*i].name).collect();
        assert_eq!(kept[0], "record_id");
        assert_eq!(kept.len(), set.len() + 1);
    }

    #[test]
    fn every_column_is_named_once() {
        for row in [USAGE, REJECT] {
            let mut seen = std::collections::HashSet::new();
            assert!(row.iter().all(|c| seen.insert(c.name)));
        }
    }
}
