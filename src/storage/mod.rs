//! PostgreSQL: connection pool, migrations, and the queries cdrflow runs. SQL lives in
//! `sql/*.sql` and is compiled in with `include_str!`.

pub mod batch;
pub mod billing;
pub mod caches;
pub mod catalog;
pub mod customers;
pub mod database;
pub mod explain;
pub mod invoices;
pub mod offsets;
pub mod reports;
pub mod rerate;
pub mod retention;
mod rows;
pub mod stats;
pub mod summary;
pub mod suspense;
pub mod tls;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use postgres_openssl::MakeTlsConnector;
use std::str::FromStr;
use std::time::Duration;

refinery::embed_migrations!("migrations");

/// Storage failures, with whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid database URL: {0}")]
    Url(String),
    /// The connection pool could not be set up with these settings.
    #[error("database pool settings: {0}")]
    PoolSetup(String),
    /// Postgres did not answer within the time the caller allows.
    #[error("no answer from Postgres within {0:?}")]
    Timeout(Duration),
    /// A row read back does not decode: the stored data is not what this build wrote.
    #[error("stored data does not decode: {0}")]
    Corrupt(String),
    /// A value could not be encoded for storage.
    #[error("cannot encode for storage: {0}")]
    Encode(String),
    /// The caller broke a rule of this module: a bug, not a database failure.
    #[error("storage called wrongly: {0}")]
    Misuse(String),
    /// A stored rating catalog could not be loaded.
    #[error("rating catalog: {0}")]
    Catalog(String),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {}", with_causes(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
}

/// The driver's error and what caused it ("error performing TLS handshake: certificate
/// verify failed", "db error: FATAL: pg_hba.conf rejects …"): its own text names only
/// the step that failed.
fn with_causes(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// Whether an error is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The database is unreachable or the connection broke: retry with back-off.
    External,
    /// A bug or a bad setting: retrying gives the same answer.
    Permanent,
    /// The database refuses the data for good (a data exception, a constraint, a trigger
    /// raising an error, a value beyond a limit): the same rows get the same answer, other
    /// rows may be fine.
    Refused,
}

impl StorageError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StorageError::Pool(_) | StorageError::Timeout(_) => ErrorKind::External,
            StorageError::Db(e) if e.is_closed() || e.code().is_none() => ErrorKind::External,
            StorageError::Db(e) => match e.code().map(|c| c.code()) {
                // connection exceptions, insufficient resources, operator intervention
                Some(c) if c.starts_with("08") || c.starts_with("53") || c.starts_with("57") => {
                    ErrorKind::External
                }
                // serialization failure, deadlock, lock not available (lock_timeout)
                Some("40001") | Some("40P01") | Some("55P03") => ErrorKind::External,
                // data exception, integrity constraint violation, program limit exceeded,
                // an error raised by PL/pgSQL (a trigger)
                Some(c)
                    if c.starts_with("22")
                        || c.starts_with("23")
                        || c.starts_with("54")
                        || c.starts_with("P0") =>
                {
                    ErrorKind::Refused
                }
                _ => ErrorKind::Permanent,
            },
            StorageError::Url(_)
            | StorageError::PoolSetup(_)
            | StorageError::Corrupt(_)
            | StorageError::Encode(_)
            | StorageError::Misuse(_)
            | StorageError::Catalog(_)
            | StorageError::Migration(_) => ErrorKind::Permanent,
        }
    }

    /// The SQLSTATE and message of a database's refusal, for a reject's detail.
    pub fn refusal(&self) -> String {
        match self {
            StorageError::Db(e) => match e.as_db_error() {
                Some(db) => format!("SQLSTATE {}: {}", db.code().code(), db.message()),
                None => e.to_string(),
            },
            other => other.to_string(),
        }
    }
}

/// The driver's settings of a connection string, TLS included (see [`tls`]).
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, StorageError> {
    Ok(target(url)?.0)
}

/// The driver's settings and the TLS settings of a connection string.
fn target(url: &str) -> Result<(tokio_postgres::Config, tls::Tls), StorageError> {
    let (rest, tls) = tls::split(url)?;
    let mut config =
        tokio_postgres::Config::from_str(&rest).map_err(|e| StorageError::Url(e.to_string()))?;
    config.ssl_mode(tls.ssl_mode());
    Ok((config, tls))
}

/// A connection's settings, ready to connect with.
struct Connect {
    config: tokio_postgres::Config,
    tls: MakeTlsConnector,
}

/// The URL's settings plus bounds on how long anything may hang: a silently dead network
/// or a stuck lock must fail the batch (to be retried), not hold the partition's offset
/// row for the quarter of an hour TCP takes to give up.
fn bounded(url: &str) -> Result<Connect, StorageError> {
    bounded_with(url, "")
}

const BOUNDS: &str =
    "-c statement_timeout=60000 -c lock_timeout=30000 -c idle_in_transaction_session_timeout=120000";

/// `bounded`, plus more server settings (`-c name=value ...`).
fn bounded_with(url: &str, settings: &str) -> Result<Connect, StorageError> {
    let (mut config, tls) = target(url)?;
    // A dead network is noticed within 30 s: data sent and not acknowledged for 20 s
    // fails the connection (`TCP_USER_TIMEOUT`), and an idle one is probed after 10 s,
    // three times 5 s apart. The kernel's defaults take a quarter of an hour.
    config
        .connect_timeout(Duration::from_secs(5))
        .tcp_user_timeout(Duration::from_secs(20))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .options(format!("{BOUNDS} {settings}").trim_end());
    Ok(Connect {
        config,
        tls: tls.connector()?,
    })
}

/// A pool that fails fast when the server is away, so callers see the error and back off
/// instead of hanging.
pub fn pool(url: &str, size: usize) -> Result<Pool, StorageError> {
    pool_of(bounded(url)?, size, Duration::from_secs(10))
}

/// The daemon's pool: `pool` with JIT compilation off. Its statements are short and run
/// thousands of times, and a plan whose cost estimate crosses `jit_above_cost` (a
/// month-summary read of many customers can) is compiled again on every execution, which
/// can cost as much as running the query.
pub fn pipeline_pool(url: &str, size: usize) -> Result<Pool, StorageError> {
    pool_of(
        bounded_with(url, "-c jit=off")?,
        size,
        Duration::from_secs(10),
    )
}

/// The HTTP API's pool, apart from the pipeline's so that slow or many requests cannot
/// take the committers' connections: few connections, each statement cut off after
/// `statement_timeout`, and a caller waits at most 2 s for a free one.
pub fn api_pool(url: &str, size: usize, statement_timeout: Duration) -> Result<Pool, StorageError> {
    let settings = format!(
        "-c jit=off -c statement_timeout={}",
        statement_timeout.as_millis()
    );
    pool_of(bounded_with(url, &settings)?, size, Duration::from_secs(2))
}

fn pool_of(connect: Connect, size: usize, wait: Duration) -> Result<Pool, StorageError> {
    let manager = Manager::from_config(
        connect.config,
        connect.tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(wait))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| StorageError::PoolSetup(e.to_string()))
}

/// Connect once, outside any pool.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, StorageError> {
    let Connect { config, tls } = bounded(url)?;
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "Database connection ended.");
        }
    });
    Ok(client)
}

/// Create the database named in `url` if it does not exist yet (connecting to the
/// `postgres` database of the same server to do so).
pub async fn ensure_database(url: &str) -> Result<(), StorageError> {
    match connect(url).await {
        Ok(_) => Ok(()),
        Err(StorageError::Db(e))
            if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME) =>
        {
            let Connect { config, tls } = bounded(url)?;
            let name = config.get_dbname().unwrap_or("postgres").to_string();
            let mut admin = config.clone();
            admin.dbname("postgres");
            let (client, connection) = admin.connect(tls).await?;
            tokio::spawn(connection);
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            match client
                .batch_execute(&format!("CREATE DATABASE {quoted}"))
                .await
            {
                Ok(()) => Ok(()),
                // Another process created it between our two calls.
                Err(e)
                    if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) =>
                {
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e),
    }
}

/// Bring the schema up to date. Safe to run concurrently and repeatedly.
pub async fn migrate(url: &str) -> Result<usize, StorageError> {
    migrate_to(url, None).await
}

/// Bring the schema up to migration `version` (None: the latest), as an older cdrflow
/// left it. Returns how many migrations were applied.
pub async fn migrate_to(url: &str, version: Option<i32>) -> Result<usize, StorageError> {
    ensure_database(url).await?;
    let mut client = connect(url).await?;
    // refinery takes no lock of its own; two instances starting together must not both
    // apply the same migration.
    client
        .batch_execute(include_str!("sql/migrate_lock.sql"))
        .await?;
    let runner = match version {
        Some(v) => migrations::runner().set_target(refinery::Target::Version(v)),
        None => migrations::runner(),
    };
    let report = runner.run_async(&mut client).await;
    let ahead = match (&report, version) {
        (Ok(_), None) => retention::partitions_ahead(&client).await.map(drop),
        _ => Ok(()),
    };
    client
        .batch_execute(include_str!("sql/migrate_unlock.sql"))
        .await?;
    let applied = report?.applied_migrations().len();
    ahead?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connection_gives_up_on_a_dead_network_within_thirty_seconds() {
        let config = bounded("postgres://postgres@127.0.0.1:5432/x")
            .unwrap()
            .config;
        let unacked = *config.get_tcp_user_timeout().unwrap();
        let idle = config.get_keepalives_idle()
            + config.get_keepalives_interval().unwrap() * config.get_keepalives_retries().unwrap();
        assert!(unacked <= Duration::from_secs(30), "{unacked:?}");
        assert!(idle <= Duration::from_secs(30), "{idle:?}");
    }
}
