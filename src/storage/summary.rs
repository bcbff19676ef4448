//! The figures of a billed month that `cdrflow demo` summarizes: revenue by service and
//! by region, the invoices' totals, lines by kind, alerts, the largest invoices, usage
//! dated in other months, the daemon's batch log, and an event worth explaining. Money
//! is summed by Postgres in NUMERIC and carried as `Decimal`, never floats.

use super::invoices::invoice_number;
use super::StorageError;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;
use tokio_postgres::GenericClient;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceRevenue {
    pub service: String,
    pub events: i64,
    /// Usage lines of the invoices (rated usage, rounded per invoice).
    pub usage: Decimal,
    /// Allowance credits (negative).
    pub allowances: Decimal,
    pub billed: Decimal,
}

/// The month by service, voice, SMS and data first: events from the usage, amounts from
/// the invoice lines, so the columns add up as on the invoices.
pub async fn revenue_by_service(
    client: &impl GenericClient,
    period: NaiveDate,
) -> Result<Vec<ServiceRevenue>, StorageError> {
    Ok(client
        .query(include_str!("sql/revenue_by_service.sql"), &[&period])
        .await?
        .iter()
        .map(|r| {
            let (usage, allowances): (Decimal, Decimal) = (r.get(2), r.get(3));
            ServiceRevenue {
                service: r.get(0),
                events: r.get(1),
                usage,
                allowances,
                billed: usage + allowances,
            }
        })
        .collect())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionRevenue {
    /// The customer's region; None when it was not given (customers added from suspense).
    pub region: Option<String>,
    pub invoices: i64,
    pub subtotal: Decimal,
    pub vat: Decimal,
    pub total: Decimal,
}

/// The month's invoices by the customer's region, the largest total first.
pub async fn revenue_by_region(
    client: &impl GenericClient,
    period: NaiveDate,
) -> Result<Vec<RegionRevenue>, StorageError> {
    Ok(client
        .query(include_str!("sql/revenue_by_region.sql"), &[&period])
        .await?
        .iter()
        .map(|r| RegionRevenue {
            region: r.get(0),
            invoices: r.get(1),
            subtotal: r.get(2),
            vat: r.get(3),
            total: r.get(4),
        })
        .collect())
}

/// A month's invoices taken together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeriodInvoices {
    pub count: i64,
    /// The first and the last invoice number; None when there is no invoice.
    pub first: Option<String>,
    pub last: Option<String>,
    pub subtotal: Decimal,
    pub vat: Decimal,
    pub total: Decimal,
}

pub async fn invoice_totals(
    client: &impl GenericClient,
    period: NaiveDate,
) -> Result<PeriodInvoices, StorageError> {
    let t = client
        .query_one(include_str!("sql/period_invoice_totals.sql"), &[&period])
        .await?;
    Ok(PeriodInvoices {
        count: t.get(0),
        first: t.get::<_, Option<i64>>(1).map(invoice_number),
        last: t.get::<_, Option<i64>>(2).map(invoice_number),
        subtotal: t.get(3),
        vat: t.get(4),
        total: t.get(5),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineTotal {
    pub kind: String,
    pub lines: i64,
    pub amount: Decimal,
}

/// The month's invoice lines by kind, in no particular order.
pub async fn lines_by_kind(
    client: &impl GenericClient,
    period: NaiveDate,
) -> Result<Vec<LineTotal>, StorageError> {
    Ok(client
        .query(include_str!("sql/period_lines_by_kind.sql"), &[&period])
        .await?
        .iter()
        .map(|r| LineTotal {
            kind: r.get(0),
            lines: r.get(1),
            amount: r.get(2),
        })
        .collect())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertCount {
    pub threshold: i16,
    pub customers: i64,
}

/// The month's credit-limit alerts: customers per threshold, lowest first.
pub async fn alerts(
    client: &impl GenericClient,
    period: NaiveDate,
) -> Result<Vec<AlertCount>, StorageError> {
    Ok(client
        .query(include_str!("sql/period_alerts.sql"), &[&period])
        .await?
        .iter()
        .map(|r| AlertCount {
            threshold: r.get(0),
            customers: r.get(1),
        })
        .collect())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopCustomer {
    pub number: String,
    pub customer_id: i64,
    pub name: String,
    pub plan: String,
    pub region: Option<String>,
    pub total: Decimal,
}

/// The month's ten largest invoices with their customers, largest first.
pub async fn top_invoices(
    client: &impl GenericClient,
    period: NaiveDate,
) -> Result<Vec<TopCustomer>, StorageError> {
    Ok(client
        .query(include_str!("sql/top_invoices.sql"), &[&period])
        .await?
        .iter()
        .map(|r| TopCustomer {
            number: r.get(0),
            customer_id: r.get(1),
            name: r.get(2),
            plan: r.get(3),
            region: r.get(4),
            total: r.get(5),
        })
        .collect())
}

/// Usage events of `topic` dated in other months than `period`: events per month
/// (YYYY-MM).
pub async fn usage_in_other_months(
    client: &impl GenericClient,
    period: NaiveDate,
    topic: &str,
) -> Result<BTreeMap<String, i64>, StorageError> {
    Ok(client
        .query(
            include_str!("sql/usage_in_other_months.sql"),
            &[&period, &topic],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// What a consumer group committed from a topic, from its batch log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchLog {
    pub batches: i64,
    pub records: i64,
    /// When the first and the last batch were committed; None without batches.
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
}

pub async fn batch_log(
    client: &impl GenericClient,
    group: &str,
    topic: &str,
) -> Result<BatchLog, StorageError> {
    let r = client
        .query_one(
            include_str!("sql/batch_log_of_topic.sql"),
            &[&group, &topic],
        )
        .await?;
    Ok(BatchLog {
        batches: r.get(0),
        records: r.get(1),
        first: r.get(2),
        last: r.get(3),
    })
}

/// The first event of the month (by record id) priced in more than one time band: a
/// call that crosses a band boundary, worth `cdrflow explain`.
pub async fn record_crossing_bands(
    client: &impl GenericClient,
    period: NaiveDate,
) -> Result<Option<String>, StorageError> {
    Ok(client
        .query_opt(include_str!("sql/record_crossing_bands.sql"), &[&period])
        .await?
        .map(|r| r.get(0)))
}
