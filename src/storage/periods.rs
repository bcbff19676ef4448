//! Which billing periods are due to be closed and invoiced (the daemon's Biller).

use super::StorageError;
use chrono::NaiveDate;
use tokio_postgres::GenericClient;

/// Periods not invoiced yet whose grace of `grace_days` days after their end is over on
/// `today`, oldest first.
pub async fn due(
    client: &impl GenericClient,
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
