//! Customers: the subscribers cdrflow bills, with their plan and billing attributes.

use super::StorageError;
use crate::domain::batch::Subscriber;
use crate::domain::customer::Customer;
// The rater looks these up per record: foldhash rather than SipHash.
use foldhash::HashMap;
use tokio_postgres::GenericClient;

/// What rating needs of the customers with these MSISDNs. The rater asks every batch, so
/// the statement is cached; `sql/subscribers.sql` says why it has no `OR $1 IS NULL`.
pub async fn subscribers(
    client: &impl deadpool_postgres::GenericClient,
    msisdns: &[String],
) -> Result<HashMap<String, Subscriber>, StorageError> {
    let stmt = client
        .prepare_cached(include_str!("sql/subscribers.sql"))
        .await?;
    Ok(subscriber_map(client.query(&stmt, &[&msisdns]).await?))
}

/// The customer change counter (migration V6): it moves when a statement that changed
/// customers commits.
pub async fn changes(client: &impl GenericClient) -> Result<i64, StorageError> {
    Ok(client
        .query_one(include_str!("sql/customer_changes.sql"), &[])
        .await?
        .get(0))
}

/// What rating needs of every customer, if there are fewer than `max` (None: more).
pub async fn all_subscribers(
    client: &impl GenericClient,
    max: i64,
) -> Result<Option<HashMap<String, Subscriber>>, StorageError> {
    let rows = client
        .query(include_str!("sql/all_subscribers.sql"), &[&max])
        .await?;
    Ok((rows.len() < max as usize).then(|| subscriber_map(rows)))
}

fn subscriber_map(rows: Vec<tokio_postgres::Row>) -> HashMap<String, Subscriber> {
    rows.into_iter()
        .map(|r| {
            (
                r.get(0),
                Subscriber {
                    customer_id: r.get(1),
                    plan: r.get(2),
                    activated_on: r.get(3),
                },
            )
        })
        .collect()
}

/// How an upsert treats a customer that exists already (same MSISDN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExisting {
    /// Leave it as it is (generated pools: a re-run never changes real data).
    Keep,
    /// Take the new plan, name and attributes (an import from the operator's CRM).
    Update,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Upserted {
    pub added: u64,
    pub updated: u64,
}

/// Insert customers, 10,000 per statement; existing MSISDNs are kept or updated.
pub async fn upsert(
    client: &tokio_postgres::Client,
    customers: &[Customer],
    on_existing: OnExisting,
) -> Result<Upserted, StorageError> {
    let sql = match on_existing {
        OnExisting::Keep => include_str!("sql/insert_customers.sql"),
        OnExisting::Update => include_str!("sql/upsert_customers.sql"),
    };
    let stmt = client.prepare(sql).await?;
    let mut out = Upserted::default();
    for chunk in customers.chunks(10_000) {
        let msisdns: Vec<&str> = chunk.iter().map(|c| c.msisdn.as_str()).collect();
        let names: Vec<&str> = chunk.iter().map(|c| c.name.as_str()).collect();
        let plans: Vec<&str> = chunk.iter().map(|c| c.plan.as_str()).collect();
        let regions: Vec<Option<&str>> = chunk.iter().map(|c| c.region.as_deref()).collect();
        let students: Vec<bool> = chunk.iter().map(|c| c.is_student).collect();
        let activated: Vec<_> = chunk.iter().map(|c| c.activated_on).collect();
        let limits: Vec<_> = chunk.iter().map(|c| c.credit_limit).collect();
        for row in client
            .query(
                &stmt,
                &[
                    &msisdns, &names, &plans, &regions, &students, &activated, &limits,
                ],
            )
            .await?
        {
            if row.get::<_, bool>(0) {
                out.added += 1;
            } else {
                out.updated += 1;
            }
        }
    }
    Ok(out)
}

/// One customer as the API shows it; None when there is no such customer.
pub async fn profile(
    client: &impl GenericClient,
    customer_id: i64,
) -> Result<Option<serde_json::Value>, StorageError> {
    Ok(client
        .query_opt(include_str!("sql/customer_profile.sql"), &[&customer_id])
        .await?
        .map(|r| {
            serde_json::json!({
                "customer_id": r.get::<_, i64>(0),
                "msisdn": r.get::<_, String>(1),
                "name": r.get::<_, String>(2),
                "plan": r.get::<_, String>(3),
                "region": r.get::<_, String>(4),
                "student": r.get::<_, bool>(5),
                "activated_on": r.get::<_, chrono::NaiveDate>(6),
                "credit_limit": r.get::<_, rust_decimal::Decimal>(7),
            })
        }))
}

/// A customer's rated events of one billing period (default: the latest with usage),
/// newest first.
pub async fn events(
    client: &impl GenericClient,
    customer_id: i64,
    period: Option<chrono::NaiveDate>,
    limit: i64,
) -> Result<serde_json::Value, StorageError> {
    let rows = client
        .query(
            include_str!("sql/customer_events.sql"),
            &[&customer_id, &period, &limit],
        )
        .await?;
    let period = rows
        .first()
        .map(|r| r.get::<_, chrono::NaiveDate>(13))
        .or(period);
    let events: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "record_id": r.get::<_, String>(0),
                "event_time": r.get::<_, chrono::DateTime<chrono::Utc>>(1),
                "service": r.get::<_, String>(2),
                "peer": r.get::<_, Option<String>>(3),
                "duration_sec": r.get::<_, Option<i32>>(4),
                "volume_bytes": r.get::<_, Option<i64>>(5),
                "zone": r.get::<_, Option<String>>(6),
                "band": r.get::<_, Option<String>>(7),
                "units": r.get::<_, Option<i64>>(8),
                "amount": r.get::<_, Option<rust_decimal::Decimal>>(9),
                "region": r.get::<_, String>(10),
                "technology": r.get::<_, String>(11),
                "roaming_country": r.get::<_, Option<String>>(12),
            })
        })
        .collect();
    Ok(serde_json::json!({
        "customer_id": customer_id,
        "period": period.map(|p| p.format("%Y-%m").to_string()),
        "events": events,
    }))
}
