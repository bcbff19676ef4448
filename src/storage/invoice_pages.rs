//! A period's stored invoice documents page by page, for writing them out as files
//! (`cdrflow bill --out`, `cdrflow demo`).

use super::StorageError;
use chrono::NaiveDate;
use tokio_postgres::GenericClient;

/// An issued invoice as stored: its JSON document, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInvoice {
    pub seq: i64,
    pub number: String,
    pub document: String,
}

/// The invoices issued for `period`.
pub async fn count(client: &impl GenericClient, period: NaiveDate) -> Result<i64, StorageError> {
    let row = client
        .query_one(include_str!("sql/invoice_count.sql"), &[&period])
        .await?;
    Ok(row.get(0))
}

/// The next page (up to 1000) of `period`'s invoices in issue order, after sequence
/// number `after` (0 for the first page). Empty after the last one.
pub async fn page(
    client: &impl GenericClient,
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
