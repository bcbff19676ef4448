//! What `cdrflow explain` reads: one stored event, its customer, its adjustments, or
//! the suspense row that still holds it.

use super::StorageError;
use crate::domain::normalize::NormalizedCdr;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use tokio_postgres::GenericClient;

#[derive(Debug)]
pub struct StoredEvent {
    pub cdr: NormalizedCdr,
    pub customer_id: i64,
    pub customer_name: String,
    pub plan: Option<String>,
    pub catalog_version: Option<i32>,
    pub amount: Option<Decimal>,
    pub units: Option<i64>,
    pub tariff_id: Option<String>,
    pub src_topic: String,
    pub src_partition: i32,
    pub src_offset: i64,
    pub kafka_ts: Option<DateTime<Utc>>,
    pub ingested_at: DateTime<Utc>,
    /// The bytes as received, when the event came through suspense (which keeps them).
    pub raw: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Adjustment {
    pub period: NaiveDate,
    pub catalog_version: i32,
    pub old_amount: Decimal,
    pub new_amount: Decimal,
    pub delta: Decimal,
    pub in_place: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct Held {
    pub reason: String,
    pub raw: Vec<u8>,
    pub normalized: serde_json::Value,
    pub src_topic: String,
    pub src_partition: i32,
    pub src_offset: i64,
    pub created_at: DateTime<Utc>,
}

pub async fn event(
    client: &impl GenericClient,
    record_id: &str,
) -> Result<Option<StoredEvent>, StorageError> {
    let Some(r) = client
        .query_opt(include_str!("sql/explain_usage.sql"), &[&record_id])
        .await?
    else {
        return Ok(None);
    };
    let normalized: serde_json::Value = r.get(0);
    let cdr: NormalizedCdr = serde_json::from_value(normalized).map_err(|e| {
        StorageError::Corrupt(format!("stored event {record_id} does not decode: {e}"))
    })?;
    Ok(Some(StoredEvent {
        cdr,
        customer_id: r.get(1),
        customer_name: r.get(2),
        plan: r.get(3),
        catalog_version: r.get(4),
        amount: r.get(5),
        units: r.get(6),
        tariff_id: r.get(7),
        src_topic: r.get(10),
        src_partition: r.get(11),
        src_offset: r.get(12),
        kafka_ts: r.get(13),
        ingested_at: r.get(14),
        raw: r.get(15),
    }))
}

pub async fn adjustments(
    client: &impl GenericClient,
    record_id: &str,
) -> Result<Vec<Adjustment>, StorageError> {
    Ok(client
        .query(include_str!("sql/explain_adjustments.sql"), &[&record_id])
        .await?
        .into_iter()
        .map(|r| Adjustment {
            period: r.get(0),
            catalog_version: r.get(1),
            old_amount: r.get(2),
            new_amount: r.get(3),
            delta: r.get(4),
            in_place: r.get(5),
            created_at: r.get(6),
        })
        .collect())
}

pub async fn held(
    client: &impl GenericClient,
    record_id: &str,
) -> Result<Option<Held>, StorageError> {
    Ok(client
        .query_opt(include_str!("sql/explain_held.sql"), &[&record_id])
        .await?
        .map(|r| Held {
            reason: r.get(0),
            raw: r.get(1),
            normalized: r.get(2),
            src_topic: r.get(3),
            src_partition: r.get(4),
            src_offset: r.get(5),
            created_at: r.get(6),
        }))
}
