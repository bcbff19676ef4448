//! The database as a whole rather than its rows: whether a connection answers
//! (`/readyz`), whether the database has been used, and dropping it (`cdrflow demo
//! --fresh`).

use super::StorageError;
use std::time::Duration;
use tokio_postgres::{Client, GenericClient};

/// One round trip on `client`. The driver's error is returned as it is: `/readyz` shows
/// its text.
pub async fn ping(client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    client.simple_query(include_str!("sql/ping.sql")).await?;
    Ok(())
}

/// Whether records have been processed or invoices issued in this database.
pub async fn is_used(client: &impl GenericClient) -> Result<bool, StorageError> {
    let row = client
        .query_one(include_str!("sql/database_used.sql"), &[])
        .await?;
    Ok(row.get(0))
}

/// A connection to the `postgres` database of the server `url` names, giving up after
/// 5 s: a database is dropped from a connection to another one.
pub async fn connect_to_server(url: &str) -> Result<Client, StorageError> {
    let (mut config, tls) = super::target(url)?;
    config
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(5));
    let (client, connection) = config.connect(tls.connector()?).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// `DROP DATABASE IF EXISTS name WITH (FORCE)`: the sessions still connected to it are
/// ended first. `server` is a connection to another database of the same server.
pub async fn drop_database(server: &Client, name: &str) -> Result<(), StorageError> {
    server
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quoted(name)
        ))
        .await?;
    Ok(())
}

/// `name` as an SQL identifier. A database name cannot be a bind parameter, so it is
/// written into the statement: in double quotes, with its own double quotes doubled.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_name_is_quoted_as_one_identifier() {
        assert_eq!(quoted("cdrflow_demo"), "\"cdrflow_demo\"");
        assert_eq!(quoted("a\"; DROP x"), "\"a\"\"; DROP x\"");
    }
}
