//! The source text of a stored catalog version, as it was applied (`cdrflow catalog show
//! --source`).

use super::StorageError;
use tokio_postgres::GenericClient;

/// The text of catalog `version`; an error if there is no such version.
pub async fn source(client: &impl GenericClient, version: i32) -> Result<String, StorageError> {
    let row = client
        .query_one(include_str!("sql/catalog_source.sql"), &[&version])
        .await?;
    Ok(row.get(0))
}
