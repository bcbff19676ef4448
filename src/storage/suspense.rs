//! Suspense resolution: records held because their subscriber was unknown are rated
//! and stored as usage once the subscriber exists, exactly once.
//!
//! Each step is one transaction: lock a page of open suspense rows whose MSISDN is now a
//! customer (`SKIP LOCKED`, so concurrent resolvers split the work), rate them with the
//! active catalog, insert them as usage with `ON CONFLICT DO NOTHING` (the same event
//! may have reached usage directly since), and mark them resolved. A record the catalog
//! cannot price stays held, with the reason, and so does an event dated before its
//! subscriber's activation (a recycled number's previous owner): it is looked at again
//! only if the customer's activation date moves before it.

use super::catalog::Version;
use super::rows::{self, UsageSource};
use super::StorageError;
use crate::domain::batch::{rate_record, RatedCdr, Subscriber, Verdict};
use crate::domain::normalize::NormalizedCdr;
use std::collections::HashSet;
use tokio_postgres::GenericClient;

/// Rows taken per transaction.
const PAGE: i64 = 2000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Now usage.
    pub rated: u64,
    /// Already usage by another way: resolved without a new row.
    pub duplicates: u64,
    /// The subscriber exists but the catalog cannot price the record: still held.
    pub unratable: u64,
    /// Customers whose month-to-date buckets grew.
    pub customers: Vec<i64>,
}

/// Resolve every open suspense record whose subscriber now exists.
pub async fn resolve(
    client: &mut deadpool_postgres::Client,
    catalog: &Version,
) -> Result<Resolved, StorageError> {
    let mut total = Resolved::default();
    let mut after = String::new();
    loop {
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                &tx.prepare_cached(include_str!("sql/resolve_suspense.sql"))
                    .await?,
                &[&after, &PAGE, &catalog.catalog.operator.timezone.name()],
            )
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.get(0);
        let page_full = rows.len() as i64 == PAGE;

        let mut verdicts = Vec::with_capacity(rows.len());
        for row in &rows {
            let record_id: String = row.get(0);
            let normalized: serde_json::Value = row.get(1);
            let cdr: NormalizedCdr = serde_json::from_value(normalized).map_err(|e| {
                StorageError::Corrupt(format!("suspense record {record_id} does not decode: {e}"))
            })?;
            let subscriber = Subscriber {
                customer_id: row.get(5),
                plan: row.get(6),
                activated_on: row.get(7),
            };
            let verdict = rate_record(&catalog.catalog, catalog.version, Some(&subscriber), cdr);
            verdicts.push((row, verdict));
        }

        let mut usage: Vec<(&RatedCdr, UsageSource)> = Vec::new();
        let mut taken: Vec<&str> = Vec::new();
        let mut unratable: Vec<(&str, &str)> = Vec::new();
        for (row, verdict) in &verdicts {
            match verdict {
                Verdict::Rated(x) => {
                    usage.push((
                        x,
                        UsageSource {
                            topic: row.get(2),
                            partition: row.get(3),
                            offset: row.get(4),
                            kafka_ts: None,
                        },
                    ));
                    taken.push(x.cdr.record_id.as_str());
                }
                Verdict::Held(n, why) => unratable.push((n.record_id.as_str(), why.as_str())),
                _ => {}
            }
        }
        let inserted = if usage.is_empty() {
            HashSet::new()
        } else {
            rows::insert_usage_if_new(&tx, &usage).await?
        };
        let new_usage: Vec<&RatedCdr> = verdicts
            .iter()
            .filter_map(|(_, v)| match v {
                Verdict::Rated(x) if inserted.contains(&x.cdr.record_id) => Some(&**x),
                _ => None,
            })
            .collect();
        let posted = super::billing::post_usage(&tx, &new_usage, None).await?;
        total
            .customers
            .extend(posted.deltas.iter().map(|d| d.customer_id));
        let resolution: Vec<&str> = taken
            .iter()
            .map(|id| {
                if inserted.contains(*id) {
                    "rated"
                } else {
                    "duplicate"
                }
            })
            .collect();
        tx.execute(
            include_str!("sql/suspense_resolved.sql"),
            &[&taken, &resolution],
        )
        .await?;
        if !unratable.is_empty() {
            let (ids, why): (Vec<&str>, Vec<&str>) = unratable.iter().copied().unzip();
            tx.execute(include_str!("sql/suspense_unratable.sql"), &[&ids, &why])
                .await?;
        }
        tx.commit().await?;
        total.rated += inserted.len() as u64;
        total.duplicates += (taken.len() - inserted.len()) as u64;
        total.unratable += unratable.len() as u64;
        if !page_full {
            break;
        }
    }
    total.customers.sort_unstable();
    total.customers.dedup();
    Ok(total)
}

/// A subscriber with records still held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldSubscriber {
    pub msisdn: String,
    pub records: i64,
}

/// The subscribers with records of `topic` still held, by MSISDN.
pub async fn held_subscribers_of_topic(
    client: &impl GenericClient,
    topic: &str,
) -> Result<Vec<HeldSubscriber>, StorageError> {
    Ok(client
        .query(include_str!("sql/held_subscribers_of_topic.sql"), &[&topic])
        .await?
        .iter()
        .map(|r| HeldSubscriber {
            msisdn: r.get(0),
            records: r.get(1),
        })
        .collect())
}

/// How the held records of a topic ended, so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resolutions {
    /// Rated and stored as usage.
    pub rated: i64,
    /// Already stored as usage when they were resolved.
    pub already_stored: i64,
    pub still_held: i64,
}

pub async fn resolutions_of_topic(
    client: &impl GenericClient,
    topic: &str,
) -> Result<Resolutions, StorageError> {
    let r = client
        .query_one(
            include_str!("sql/suspense_resolutions_of_topic.sql"),
            &[&topic],
        )
        .await?;
    Ok(Resolutions {
        rated: r.get(0),
        already_stored: r.get(1),
        still_held: r.get(2),
    })
}
