//! Customers: the subscribers cdrflow bills. Minimal until the billing issue adds plans.

use super::StorageError;
use crate::domain::generator::Customer;

/// Insert customers that do not exist yet (by MSISDN); returns how many were new.
pub async fn upsert(
    client: &tokio_postgres::Client,
    customers: &[Customer],
) -> Result<u64, StorageError> {
    let mut added = 0;
    for chunk in customers.chunks(10_000) {
        let msisdns: Vec<&str> = chunk.iter().map(|c| c.msisdn.as_str()).collect();
        let names: Vec<&str> = chunk.iter().map(|c| c.name.as_str()).collect();
        added += client
            .execute(
                "INSERT INTO customers (msisdn, name) SELECT * FROM UNNEST($1::text[], $2::text[])
                 ON CONFLICT (msisdn) DO NOTHING",
                &[&msisdns, &names],
            )
            .await?;
    }
    Ok(added)
}
