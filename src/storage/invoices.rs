//! Closing a billing period and issuing its invoices: numbered from a gap-free sequence,
//! stored with their lines and their JSON document, a chunk of customers per
//! transaction. Running it again for the same period issues only what is missing, so a
//! run killed half-way is finished by the next one without a gap or a repeat.

use super::billing::{accounts, buckets};
use super::catalog::Version;
use super::StorageError;
use crate::domain::billing::{self, Adjustment, AdjustmentKind, BillingError, Invoice};
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum BillError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error("another `cdrflow bill` is running on this database")]
    Busy,
    #[error("invoice document does not serialize: {0}")]
    Document(#[from] serde_json::Error),
}

impl From<tokio_postgres::Error> for BillError {
    fn from(e: tokio_postgres::Error) -> Self {
        BillError::Storage(e.into())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillReport {
    /// The period was open and this run closed it.
    pub closed_now: bool,
    /// Invoices this run numbered and stored.
    pub issued: u64,
    /// Invoices of the period that existed before this run.
    pub existing: u64,
    /// Adjustments from closed periods billed on this run's invoices.
    pub adjustments: u64,
}

/// Key of the advisory lock that keeps two bill runs apart.
const BILL_LOCK: i64 = 0x0cd7_f10b;

/// Close `period` (no more usage enters its buckets) and invoice every customer who was
/// active in it or has usage or adjustments to bill, `chunk` customers per transaction.
pub async fn bill_period(
    client: &mut deadpool_postgres::Client,
    catalog: &Version,
    period: NaiveDate,
    chunk: i64,
) -> Result<BillReport, BillError> {
    let locked: bool = client
        .query_one(include_str!("sql/bill_lock.sql"), &[&BILL_LOCK])
        .await?
        .get(0);
    if !locked {
        return Err(BillError::Busy);
    }
    let result = bill_locked(client, catalog, period, chunk).await;
    client
        .execute(include_str!("sql/bill_unlock.sql"), &[&BILL_LOCK])
        .await?;
    result
}

async fn bill_locked(
    client: &mut deadpool_postgres::Client,
    catalog: &Version,
    period: NaiveDate,
    chunk: i64,
) -> Result<BillReport, BillError> {
    if period.format("%d").to_string() != "01" {
        return Err(BillingError::NotAPeriod(period).into());
    }
    let mut report = BillReport {
        closed_now: close_period(&*client, period).await?,
        ..Default::default()
    };
    report.existing = client
        .query_one(include_str!("sql/count_invoices.sql"), &[&period])
        .await?
        .get::<_, i64>(0) as u64;
    let end = billing::period_end(period);
    let tz = catalog.catalog.operator.timezone.name().to_string();
    let mut after = 0_i64;
    loop {
        let ids: Vec<i64> = client
            .query(
                include_str!("sql/customers_to_bill.sql"),
                &[&period, &end, &after, &chunk],
            )
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        let Some(&last) = ids.last() else { break };
        after = last;
        let tx = client.transaction().await?;
        let accounts = accounts(&tx, &ids).await?;
        let mut usage = buckets(&tx, &ids, &[period]).await?;
        let (mut owed, adjustment_ids) = adjustments(&tx, &ids, period, &tz).await?;
        let mut invoices = Vec::with_capacity(ids.len());
        for (id, account) in &accounts {
            let u = usage.remove(&(*id, period)).unwrap_or_default();
            let a = owed.remove(id).unwrap_or_default();
            invoices.push(billing::invoice(
                &catalog.catalog,
                catalog.version,
                &account.bill_to,
                period,
                &u,
                &a,
            )?);
        }
        let n = invoices.len() as i64;
        let last_value: i64 = tx
            .query_one(include_str!("sql/take_invoice_numbers.sql"), &[&n])
            .await?
            .get(0);
        let issued_at = Utc::now();
        for (i, inv) in invoices.iter_mut().enumerate() {
            inv.number = invoice_number(last_value - n + 1 + i as i64);
            inv.issued_at = Some(issued_at);
        }
        store(&tx, &invoices, issued_at, last_value - n + 1).await?;
        let mut billed_ids = Vec::new();
        let mut billed_on = Vec::new();
        for inv in &invoices {
            for id in adjustment_ids.get(&inv.customer.id).into_iter().flatten() {
                billed_ids.push(*id);
                billed_on.push(inv.number.as_str());
            }
        }
        if !billed_ids.is_empty() {
            tx.execute(
                include_str!("sql/adjustments_billed.sql"),
                &[&billed_ids, &billed_on],
            )
            .await?;
        }
        tx.commit().await?;
        report.issued += invoices.len() as u64;
        report.adjustments += billed_ids.len() as u64;
    }
    client
        .execute(include_str!("sql/period_billed.sql"), &[&period])
        .await?;
    Ok(report)
}

/// The invoice number of sequence value `seq`.
pub fn invoice_number(seq: i64) -> String {
    format!("INV-{seq:08}")
}

/// Close `period`: true if this call closed it. The row is created first, in its own
/// statement, so that every batch from then on locks it; the UPDATE then waits for the
/// batches that saw the period open (they hold the row FOR SHARE) to commit.
pub async fn close_period<C: GenericClient>(
    client: &C,
    period: NaiveDate,
) -> Result<bool, StorageError> {
    client
        .execute(include_str!("sql/add_period.sql"), &[&period])
        .await?;
    Ok(client
        .execute(include_str!("sql/close_period.sql"), &[&period])
        .await?
        == 1)
}

type Owed = (BTreeMap<i64, Vec<Adjustment>>, BTreeMap<i64, Vec<i64>>);

/// What `period`'s invoices of these customers will carry from closed periods, as it
/// stands now: for month-to-date estimates. `tz` is the operator's time zone.
pub async fn owed<C: GenericClient>(
    client: &C,
    customers: &[i64],
    period: NaiveDate,
    tz: &str,
) -> Result<BTreeMap<i64, Vec<Adjustment>>, StorageError> {
    Ok(adjustments(client, customers, period, tz).await?.0)
}

/// Adjustments owed from periods before `period` and not billed yet: per customer, one
/// per kind and event day, with the ids they stand for.
async fn adjustments<C: GenericClient>(
    client: &C,
    customers: &[i64],
    period: NaiveDate,
    tz: &str,
) -> Result<Owed, StorageError> {
    let rows = client
        .query(
            include_str!("sql/owed_adjustments.sql"),
            &[&customers, &period, &tz],
        )
        .await?;
    let mut grouped: BTreeMap<(i64, AdjustmentKind, NaiveDate), (i64, Decimal)> = BTreeMap::new();
    let mut ids: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for r in rows {
        let kind: String = r.get(2);
        let Some(kind) = AdjustmentKind::parse(&kind) else {
            continue;
        };
        let customer: i64 = r.get(1);
        let e = grouped.entry((customer, kind, r.get(3))).or_default();
        e.0 += 1;
        e.1 += r.get::<_, Decimal>(4);
        ids.entry(customer).or_default().push(r.get(0));
    }
    let mut owed: BTreeMap<i64, Vec<Adjustment>> = BTreeMap::new();
    for ((customer, kind, date), (events, amount)) in grouped {
        owed.entry(customer).or_default().push(Adjustment {
            kind,
            date,
            events,
            amount,
        });
    }
    Ok((owed, ids))
}

async fn store(
    tx: &deadpool_postgres::Transaction<'_>,
    invoices: &[Invoice],
    issued_at: DateTime<Utc>,
    first_seq: i64,
) -> Result<(), BillError> {
    if invoices.is_empty() {
        return Ok(());
    }
    let numbers: Vec<&str> = invoices.iter().map(|i| i.number.as_str()).collect();
    let seqs: Vec<i64> = (0..invoices.len() as i64).map(|i| first_seq + i).collect();
    let customers: Vec<i64> = invoices.iter().map(|i| i.customer.id).collect();
    let periods: Vec<NaiveDate> = invoices.iter().map(|i| i.period_start).collect();
    let versions: Vec<i32> = invoices.iter().map(|i| i.catalog_version).collect();
    let currencies: Vec<&str> = invoices.iter().map(|i| i.currency.as_str()).collect();
    let subtotals: Vec<Decimal> = invoices.iter().map(|i| i.subtotal).collect();
    let vats: Vec<Decimal> = invoices.iter().map(|i| i.vat).collect();
    let totals: Vec<Decimal> = invoices.iter().map(|i| i.total).collect();
    let documents: Vec<String> = invoices.iter().map(document).collect::<Result<_, _>>()?;
    tx.execute(
        include_str!("sql/insert_invoices.sql"),
        &[
            &numbers,
            &seqs,
            &customers,
            &periods,
            &versions,
            &currencies,
            &subtotals,
            &vats,
            &totals,
            &documents,
            &issued_at,
        ],
    )
    .await?;
    let mut l_number = Vec::new();
    let mut l_no = Vec::new();
    let mut l_kind = Vec::new();
    let mut l_service = Vec::new();
    let mut l_description = Vec::new();
    let mut l_date = Vec::new();
    let mut l_quantity = Vec::new();
    let mut l_unit = Vec::new();
    let mut l_rated = Vec::new();
    let mut l_amount = Vec::new();
    for inv in invoices {
        for (i, l) in inv.lines.iter().enumerate() {
            l_number.push(inv.number.as_str());
            l_no.push(i as i32 + 1);
            l_kind.push(l.kind.as_str());
            l_service.push(l.service.as_deref());
            l_description.push(l.description.as_str());
            l_date.push(l.date);
            l_quantity.push(l.quantity);
            l_unit.push(l.unit.as_deref());
            l_rated.push(l.rated);
            l_amount.push(l.amount);
        }
    }
    tx.execute(
        include_str!("sql/insert_invoice_lines.sql"),
        &[
            &l_number,
            &l_no,
            &l_kind,
            &l_service,
            &l_description,
            &l_date,
            &l_quantity,
            &l_unit,
            &l_rated,
            &l_amount,
        ],
    )
    .await?;
    Ok(())
}

/// The invoice's JSON document, as stored, written and served.
pub fn document(invoice: &Invoice) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(invoice)
}

/// A stored invoice's document.
pub async fn stored_document<C: GenericClient>(
    client: &C,
    number: &str,
) -> Result<Option<String>, StorageError> {
    Ok(client
        .query_opt(include_str!("sql/invoice_document.sql"), &[&number])
        .await?
        .map(|r| r.get(0)))
}

/// One row of an invoice listing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InvoiceSummary {
    pub number: String,
    pub customer_id: i64,
    pub period: NaiveDate,
    pub currency: String,
    pub subtotal: Decimal,
    pub vat: Decimal,
    pub total: Decimal,
    pub issued_at: DateTime<Utc>,
}

/// Invoices, optionally of one period and/or customer, in number order.
pub async fn list<C: GenericClient>(
    client: &C,
    period: Option<NaiveDate>,
    customer: Option<i64>,
    limit: i64,
) -> Result<Vec<InvoiceSummary>, StorageError> {
    Ok(client
        .query(
            include_str!("sql/list_invoices.sql"),
            &[&period, &customer, &limit],
        )
        .await?
        .into_iter()
        .map(|r| InvoiceSummary {
            number: r.get(0),
            customer_id: r.get(1),
            period: r.get(2),
            currency: r.get(3),
            subtotal: r.get(4),
            vat: r.get(5),
            total: r.get(6),
            issued_at: r.get(7),
        })
        .collect())
}

/// Periods not invoiced yet whose grace of `grace_days` days after their end is over on
/// `today`, oldest first.
pub async fn periods_due(
    client: &impl tokio_postgres::GenericClient,
    grace_days: u32,
    today: NaiveDate,
) -> Result<Vec<NaiveDate>, StorageError> {
    Ok(client
        .query(
            include_str!("sql/periods_due.sql"),
            &[&(grace_days as i32), &today],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// An issued invoice as stored: its JSON document, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInvoice {
    pub seq: i64,
    pub number: String,
    pub document: String,
}

/// The invoices issued for `period`.
pub async fn count_issued(
    client: &impl tokio_postgres::GenericClient,
    period: NaiveDate,
) -> Result<i64, StorageError> {
    let row = client
        .query_one(include_str!("sql/count_invoices.sql"), &[&period])
        .await?;
    Ok(row.get(0))
}

/// The next page (up to 1000) of `period`'s invoices in issue order, after sequence
/// number `after` (0 for the first page). Empty after the last one.
pub async fn documents_page(
    client: &impl tokio_postgres::GenericClient,
    period: NaiveDate,
    after: i64,
) -> Result<Vec<StoredInvoice>, StorageError> {
    Ok(client
        .query(
            include_str!("sql/invoice_documents_page.sql"),
            &[&period, &after],
        )
        .await?
        .iter()
        .map(|r| StoredInvoice {
            seq: r.get(0),
            number: r.get(1),
            document: r.get(2),
        })
        .collect())
}
