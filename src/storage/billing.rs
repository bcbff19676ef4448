//! Month-to-date usage buckets and late usage, written in the batch transaction from the
//! rows it inserted, and read back for the accumulators, the API and `cdrflow bill`.

use super::caches::KnownBuckets;
use super::StorageError;
use crate::domain::batch::RatedCdr;
use crate::domain::billing::{BillTo, Bucket, BucketKey, Usage};
use crate::domain::record::RecordType;
use chrono::NaiveDate;
use deadpool_postgres::GenericClient;
use deadpool_postgres::Transaction;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

/// New usage of one customer and period, as it was added to the buckets.
#[derive(Debug, Clone)]
pub struct CustomerUsage {
    pub customer_id: i64,
    pub period: NaiveDate,
    pub usage: Usage,
}

/// What posting new usage did.
#[derive(Debug, Default)]
pub struct Posted {
    /// Added to open periods' buckets, by customer and period.
    pub deltas: Vec<CustomerUsage>,
    /// Events of closed periods, owed on the next open invoice instead.
    pub late: u32,
    /// Customers whose buckets were rebuilt (re-rating): read them again.
    pub invalidated: Vec<i64>,
}

/// Post newly inserted usage rows: to the buckets of open periods, as late-usage
/// adjustments for closed ones, and mark the credit-limit checks this makes due. Must run
/// in the transaction that inserted the rows.
/// Buckets not in `known` are copied in as new ones first (see `KnownBuckets`).
pub async fn post_usage(
    tx: &Transaction<'_>,
    rows: &[&RatedCdr],
    known: Option<&KnownBuckets>,
) -> Result<Posted, StorageError> {
    if rows.is_empty() {
        return Ok(Posted::default());
    }
    let periods: Vec<NaiveDate> = rows
        .iter()
        .map(|x| x.rating.period)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let closed = lock_periods(tx, &periods).await?;

    let mut open: BTreeMap<(i64, NaiveDate), Usage> = BTreeMap::new();
    let mut late: Vec<&RatedCdr> = Vec::new();
    for x in rows {
        if closed.contains(&x.rating.period) {
            late.push(x);
        } else {
            open.entry((x.customer_id, x.rating.period))
                .or_default()
                .add(x.catalog_version, &x.rating);
        }
    }
    if !late.is_empty() {
        let stmt = tx
            .prepare_cached(include_str!("sql/insert_late.sql"))
            .await?;
        let ids: Vec<&str> = late.iter().map(|x| x.cdr.record_id.as_str()).collect();
        let customers: Vec<i64> = late.iter().map(|x| x.customer_id).collect();
        let periods: Vec<NaiveDate> = late.iter().map(|x| x.rating.period).collect();
        let versions: Vec<i32> = late.iter().map(|x| x.catalog_version).collect();
        let amounts: Vec<Decimal> = late.iter().map(|x| x.rating.amount).collect();
        tx.execute(&stmt, &[&ids, &customers, &periods, &versions, &amounts])
            .await?;
    }
    let deltas: Vec<CustomerUsage> = open
        .into_iter()
        .map(|((customer_id, period), usage)| CustomerUsage {
            customer_id,
            period,
            usage,
        })
        .collect();
    write_buckets(tx, &deltas, known).await?;
    let pairs: Vec<(i64, NaiveDate)> = deltas.iter().map(|d| (d.customer_id, d.period)).collect();
    let owed_by: Vec<i64> = late
        .iter()
        .map(|x| x.customer_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    mark_checks(tx, &pairs, &owed_by).await?;
    Ok(Posted {
        deltas,
        late: late.len() as u32,
        invalidated: Vec::new(),
    })
}

/// Which of `periods` are closed.
pub async fn closed_among(
    client: &impl GenericClient,
    periods: &[NaiveDate],
) -> Result<BTreeSet<NaiveDate>, StorageError> {
    let rows = client
        .query(include_str!("sql/closed_periods.sql"), &[&periods])
        .await?;
    Ok(rows.into_iter().map(|r| r.get(0)).collect())
}

/// Lock the rows of `periods` (sorted, without repeats) in `billing_periods` until the
/// transaction ends and return the closed ones. A period without a row is given one, so
/// that it can be locked.
pub(super) async fn lock_periods(
    tx: &Transaction<'_>,
    periods: &[NaiveDate],
) -> Result<BTreeSet<NaiveDate>, StorageError> {
    let lock = tx
        .prepare_cached(include_str!("sql/lock_periods.sql"))
        .await?;
    let mut rows = tx.query(&lock, &[&periods]).await?;
    if rows.len() < periods.len() {
        let add = tx
            .prepare_cached(include_str!("sql/add_periods.sql"))
            .await?;
        tx.execute(&add, &[&periods]).await?;
        rows = tx.query(&lock, &[&periods]).await?;
    }
    Ok(rows
        .into_iter()
        .filter(|r| r.get::<_, bool>(1))
        .map(|r| r.get(0))
        .collect())
}

/// One bucket delta: customer, period, key and what it adds.
type BucketRow<'a> = (i64, NaiveDate, &'a BucketKey, &'a Bucket);

/// The unique key of a bucket (V3__billing.sql).
const BUCKET_KEY: &str = "usage_buckets_pkey";

/// Add `deltas` to the buckets. Keys `known` to be stored go through the additive upsert;
/// the others are copied in as new rows under a savepoint, which skips the upsert's
/// conflict check of each row and so costs the server less. If one of them is stored all
/// the same (written by another process, or before this one started), the copy is rolled
/// back and they are upserted too: the prediction decides the cost, never the totals.
async fn write_buckets(
    tx: &Transaction<'_>,
    deltas: &[CustomerUsage],
    known: Option<&KnownBuckets>,
) -> Result<(), StorageError> {
    let rows: Vec<BucketRow> = deltas
        .iter()
        .flat_map(|d| {
            d.usage
                .buckets
                .iter()
                .map(|(k, b)| (d.customer_id, d.period, k, b))
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let Some(known) = known else {
        return upsert_buckets(tx, &rows).await;
    };
    let was_known = known.learn(
        rows.iter()
            .map(|(c, p, k, _)| (*p, known.fingerprint(*c, k))),
    );
    let (stored, new): (Vec<_>, Vec<_>) = rows.iter().zip(&was_known).partition(|(_, k)| **k);
    let new: Vec<BucketRow> = new.into_iter().map(|(r, _)| *r).collect();
    let copied = !new.is_empty() && known.may_copy() && {
        let copied =
            super::batch::copied_unless_stored(tx, BUCKET_KEY, copy_buckets(tx, &new)).await?;
        known.copy_done(copied);
        copied
    };
    if copied {
        let stored: Vec<BucketRow> = stored.into_iter().map(|(r, _)| *r).collect();
        upsert_buckets(tx, &stored).await
    } else {
        upsert_buckets(tx, &rows).await
    }
}

/// The additive upsert of `rows`, in one statement. Rows come sorted by key, so two
/// transactions touching the same customers lock them in the same order.
async fn upsert_buckets(tx: &Transaction<'_>, rows: &[BucketRow<'_>]) -> Result<(), StorageError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut c = BucketColumns::with_capacity(rows.len());
    for (customer, period, k, b) in rows {
        c.push(*customer, *period, k, b);
    }
    let stmt = tx
        .prepare_cached(include_str!("sql/upsert_buckets.sql"))
        .await?;
    tx.execute(&stmt, &c.params()).await?;
    Ok(())
}

/// Copy `rows` into `usage_buckets` as new rows with a binary `COPY`.
async fn copy_buckets(tx: &Transaction<'_>, rows: &[BucketRow<'_>]) -> Result<usize, StorageError> {
    let stmt = tx
        .prepare_cached(include_str!("sql/copy_buckets.sql"))
        .await?;
    let sink = tx.copy_in(&stmt).await?;
    let writer = BinaryCopyInWriter::new(sink, &BUCKET_COPY_TYPES);
    futures::pin_mut!(writer);
    for (customer, period, k, b) in rows {
        let values: [&(dyn ToSql + Sync); 13] = [
            customer,
            period,
            &k.tariff_id.as_str(),
            &k.band.as_str(),
            &k.catalog_version,
            &b.service.as_str(),
            &b.zone.as_str(),
            &b.price,
            &b.units,
            &b.events,
            &b.amount,
            &b.extra,
            &b.cost,
        ];
        writer.as_mut().write(&values).await?;
    }
    Ok(writer.finish().await? as usize)
}

/// The types of `copy_buckets`' columns, in its order.
const BUCKET_COPY_TYPES: [Type; 13] = [
    Type::INT8,
    Type::DATE,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::NUMERIC,
    Type::INT8,
    Type::INT8,
    Type::NUMERIC,
    Type::NUMERIC,
    Type::NUMERIC,
];

#[derive(Default)]
struct BucketColumns<'a> {
    customer: Vec<i64>,
    period: Vec<NaiveDate>,
    tariff: Vec<&'a str>,
    band: Vec<&'a str>,
    version: Vec<i32>,
    service: Vec<&'a str>,
    zone: Vec<&'a str>,
    price: Vec<Decimal>,
    units: Vec<i64>,
    events: Vec<i64>,
    amount: Vec<Decimal>,
    extra: Vec<Decimal>,
    cost: Vec<Decimal>,
}

impl<'a> BucketColumns<'a> {
    fn with_capacity(n: usize) -> Self {
        BucketColumns {
            customer: Vec::with_capacity(n),
            period: Vec::with_capacity(n),
            tariff: Vec::with_capacity(n),
            band: Vec::with_capacity(n),
            version: Vec::with_capacity(n),
            service: Vec::with_capacity(n),
            zone: Vec::with_capacity(n),
            price: Vec::with_capacity(n),
            units: Vec::with_capacity(n),
            events: Vec::with_capacity(n),
            amount: Vec::with_capacity(n),
            extra: Vec::with_capacity(n),
            cost: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, customer: i64, period: NaiveDate, k: &'a BucketKey, b: &'a Bucket) {
        self.customer.push(customer);
        self.period.push(period);
        self.tariff.push(&k.tariff_id);
        self.band.push(&k.band);
        self.version.push(k.catalog_version);
        self.service.push(b.service.as_str());
        self.zone.push(&b.zone);
        self.price.push(b.price);
        self.units.push(b.units);
        self.events.push(b.events);
        self.amount.push(b.amount);
        self.extra.push(b.extra);
        self.cost.push(b.cost);
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 13] {
        [
            &self.customer,
            &self.period,
            &self.tariff,
            &self.band,
            &self.version,
            &self.service,
            &self.zone,
            &self.price,
            &self.units,
            &self.events,
            &self.amount,
            &self.extra,
            &self.cost,
        ]
    }
}

/// The stored buckets of `customers` in `periods`.
pub async fn buckets<C: GenericClient>(
    client: &C,
    customers: &[i64],
    periods: &[NaiveDate],
) -> Result<BTreeMap<(i64, NaiveDate), Usage>, StorageError> {
    let stmt = client
        .prepare_cached(include_str!("sql/buckets_of.sql"))
        .await?;
    let mut out: BTreeMap<(i64, NaiveDate), Usage> = BTreeMap::new();
    for r in client.query(&stmt, &[&customers, &periods]).await? {
        let service: String = r.get(5);
        let service = RecordType::parse(&service).ok_or_else(|| {
            StorageError::Corrupt(format!("usage bucket with unknown service {service:?}"))
        })?;
        out.entry((r.get(0), r.get(1))).or_default().add_bucket(
            BucketKey {
                tariff_id: r.get(2),
                band: r.get(3),
                catalog_version: r.get(4),
            },
            Bucket {
                service,
                zone: r.get(6),
                price: r.get(7),
                units: r.get(8),
                events: r.get(9),
                amount: r.get(10),
                extra: r.get(11),
                cost: r.get(12),
            },
        );
    }
    Ok(out)
}

/// Replace the buckets of these (customer, open period) pairs (sorted, without repeats)
/// by what their stored events make: after events were priced again in place. Three
/// statements whatever the number of pairs, the last marking their credit-limit checks.
pub async fn rebuild_buckets(
    tx: &Transaction<'_>,
    pairs: &[(i64, NaiveDate)],
) -> Result<(), StorageError> {
    let customers: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    let periods: Vec<NaiveDate> = pairs.iter().map(|p| p.1).collect();
    let delete = tx
        .prepare_cached(include_str!("sql/delete_buckets.sql"))
        .await?;
    tx.execute(&delete, &[&customers, &periods]).await?;
    let insert = tx
        .prepare_cached(concat!(
            include_str!("sql/rebuild_buckets.sql"),
            include_str!("sql/buckets_from_usage.sql")
        ))
        .await?;
    tx.execute(&insert, &[&customers, &periods]).await?;
    mark_checks(tx, pairs, &[]).await
}

/// A customer as billing sees them: who the invoice is for, and their credit limit.
#[derive(Debug, Clone)]
pub struct Account {
    pub bill_to: BillTo,
    pub credit_limit: Decimal,
}

/// The accounts of `customers`, by id.
pub async fn accounts<C: GenericClient>(
    client: &C,
    customers: &[i64],
) -> Result<BTreeMap<i64, Account>, StorageError> {
    let stmt = client
        .prepare_cached(include_str!("sql/accounts.sql"))
        .await?;
    Ok(client
        .query(&stmt, &[&customers])
        .await?
        .into_iter()
        .map(|r| {
            (
                r.get(0),
                Account {
                    bill_to: BillTo {
                        id: r.get(0),
                        name: r.get(1),
                        msisdn: r.get(2),
                        plan: r.get(3),
                        region: r.get(4),
                        is_student: r.get(5),
                        activated_on: r.get(6),
                    },
                    credit_limit: r.get(7),
                },
            )
        })
        .collect())
}

/// A credit-limit alert.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Alert {
    pub customer_id: i64,
    pub msisdn: String,
    pub period: NaiveDate,
    pub threshold: i16,
    pub amount: Decimal,
    pub credit_limit: Decimal,
    pub raised_at: chrono::DateTime<chrono::Utc>,
}

/// Store those of `alerts` whose customer, period and threshold has none yet, in one
/// statement; returns the stored ones.
pub async fn raise_alerts(
    tx: &Transaction<'_>,
    alerts: Vec<Alert>,
) -> Result<Vec<Alert>, StorageError> {
    if alerts.is_empty() {
        return Ok(alerts);
    }
    let stmt = tx
        .prepare_cached(include_str!("sql/raise_alerts.sql"))
        .await?;
    let customers: Vec<i64> = alerts.iter().map(|a| a.customer_id).collect();
    let periods: Vec<NaiveDate> = alerts.iter().map(|a| a.period).collect();
    let thresholds: Vec<i16> = alerts.iter().map(|a| a.threshold).collect();
    let amounts: Vec<Decimal> = alerts.iter().map(|a| a.amount).collect();
    let limits: Vec<Decimal> = alerts.iter().map(|a| a.credit_limit).collect();
    let times: Vec<chrono::DateTime<chrono::Utc>> = alerts.iter().map(|a| a.raised_at).collect();
    let stored: BTreeSet<(i64, NaiveDate, i16)> = tx
        .query(
            &stmt,
            &[&customers, &periods, &thresholds, &amounts, &limits, &times],
        )
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    Ok(alerts
        .into_iter()
        .filter(|a| stored.contains(&(a.customer_id, a.period, a.threshold)))
        .collect())
}

/// Mark the credit-limit checks this transaction makes due (`sql/mark_alert_checks.sql`):
/// `pairs` (sorted, without repeats) whose buckets changed, and the open periods of
/// `owed_by`, customers now owed more from closed periods. In the transaction of the
/// change, so that no commit leaves its check undone whatever happens to the process.
pub async fn mark_checks(
    tx: &Transaction<'_>,
    pairs: &[(i64, NaiveDate)],
    owed_by: &[i64],
) -> Result<(), StorageError> {
    if pairs.is_empty() && owed_by.is_empty() {
        return Ok(());
    }
    let customers: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    let periods: Vec<NaiveDate> = pairs.iter().map(|p| p.1).collect();
    let stmt = tx
        .prepare_cached(include_str!("sql/mark_alert_checks.sql"))
        .await?;
    tx.execute(&stmt, &[&customers, &periods, &owed_by]).await?;
    Ok(())
}

/// A credit-limit check that is due: the (customer, period), the marker's `seq`, and
/// what deciding it takes, all read in one snapshot.
#[derive(Debug, Clone)]
pub struct PendingCheck {
    pub period: NaiveDate,
    pub seq: i64,
    pub account: Account,
    /// The gross amount in the buckets.
    pub gross: Decimal,
    /// Thresholds already raised.
    pub raised: Vec<i16>,
    /// At most what closed periods add to this period's invoice.
    pub owed_at_most: Decimal,
}

/// The checks still due among `pairs`, in one round trip (`sql/pending_checks.sql`): the
/// sums are taken in Postgres, so a customer's buckets never travel unless an alert
/// needs them. A pair without a marker was evaluated since its commit, by anyone.
pub async fn pending_checks<C: GenericClient>(
    client: &C,
    pairs: &[(i64, NaiveDate)],
) -> Result<Vec<PendingCheck>, StorageError> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let customers: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    let periods: Vec<NaiveDate> = pairs.iter().map(|p| p.1).collect();
    let stmt = client
        .prepare_cached(include_str!("sql/pending_checks.sql"))
        .await?;
    Ok(client
        .query(&stmt, &[&customers, &periods])
        .await?
        .into_iter()
        .map(|r| PendingCheck {
            period: r.get(1),
            seq: r.get(2),
            account: Account {
                bill_to: BillTo {
                    id: r.get(0),
                    name: r.get(3),
                    msisdn: r.get(4),
                    plan: r.get(5),
                    region: r.get(6),
                    is_student: r.get(7),
                    activated_on: r.get(8),
                },
                credit_limit: r.get(9),
            },
            gross: r.get(10),
            raised: r.get(11),
            owed_at_most: r.get(12),
        })
        .collect())
}

/// The (customer, period) pairs with a check due, for these customers.
pub async fn checks_of<C: GenericClient>(
    client: &C,
    customers: &[i64],
) -> Result<Vec<(i64, NaiveDate)>, StorageError> {
    let stmt = client
        .prepare_cached(include_str!("sql/checks_of.sql"))
        .await?;
    Ok(client
        .query(&stmt, &[&customers])
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// A page of checks due for at least `min_age`, for customers of one shard
/// (`customer_id mod shards = shard`), after `after` in key order.
pub async fn checks_page<C: GenericClient>(
    client: &C,
    (shard, shards): (i64, i64),
    after: (i64, NaiveDate),
    min_age: std::time::Duration,
    limit: i64,
) -> Result<Vec<(i64, NaiveDate)>, StorageError> {
    let stmt = client
        .prepare_cached(include_str!("sql/checks_page.sql"))
        .await?;
    let age = min_age.as_secs_f64();
    Ok(client
        .query(&stmt, &[&shards, &shard, &after.0, &after.1, &age, &limit])
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Clear evaluated checks (`sql/clear_alert_checks.sql`): each (customer, period, seq)
/// only if no commit marked it again after `seq` was read; a `None` seq clears it
/// whatever it is. Returns how many were cleared.
pub async fn clear_checks<C: GenericClient>(
    client: &C,
    done: &[(i64, NaiveDate, Option<i64>)],
) -> Result<u64, StorageError> {
    if done.is_empty() {
        return Ok(0);
    }
    let customers: Vec<i64> = done.iter().map(|d| d.0).collect();
    let periods: Vec<NaiveDate> = done.iter().map(|d| d.1).collect();
    let seqs: Vec<Option<i64>> = done.iter().map(|d| d.2).collect();
    let stmt = client
        .prepare_cached(include_str!("sql/clear_alert_checks.sql"))
        .await?;
    Ok(client
        .execute(&stmt, &[&customers, &periods, &seqs])
        .await?)
}
