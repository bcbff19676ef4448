//! The versioned catalog in Postgres: applying a file as a new version, loading the
//! active (highest) version. The stored source text is parsed again on load, so a
//! version always means exactly what its file said.

use super::StorageError;
use crate::domain::catalog::{Catalog, CatalogError};
use sha2::{Digest, Sha256};
use tokio_postgres::GenericClient;

/// A loaded catalog version.
#[derive(Debug, Clone)]
pub struct Version {
    pub version: i32,
    pub label: String,
    pub sha256: String,
    pub applied_at: chrono::DateTime<chrono::Utc>,
    pub catalog: Catalog,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Invalid(#[from] CatalogError),
    #[error("the catalog is refused: customers are on plans it does not have: {}", .0.iter().map(|(p, n)| format!("{p} ({n} customer(s))")).collect::<Vec<_>>().join(", "))]
    PlansInUse(Vec<(String, i64)>),
    #[error("{0}")]
    Storage(#[from] StorageError),
}

impl From<tokio_postgres::Error> for ApplyError {
    fn from(e: tokio_postgres::Error) -> Self {
        ApplyError::Storage(e.into())
    }
}

/// What `apply` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    New {
        version: i32,
    },
    /// The file is byte for byte the active version: nothing new was stored.
    Unchanged {
        version: i32,
    },
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Check `text` and store it as the next version, unless it is the active one already.
pub async fn apply(client: &mut tokio_postgres::Client, text: &str) -> Result<Applied, ApplyError> {
    let catalog = Catalog::parse(text)?;
    let digest = sha256(text);
    let tx = client.transaction().await?;
    tx.execute(include_str!("sql/lock_catalog.sql"), &[])
        .await?;
    let active = tx
        .query_opt(include_str!("sql/latest_catalog.sql"), &[])
        .await?;
    if let Some(row) = &active {
        if row.get::<_, String>(1) == digest {
            return Ok(Applied::Unchanged {
                version: row.get(0),
            });
        }
    }
    let missing: Vec<(String, i64)> = tx
        .query(
            include_str!("sql/plans_in_use.sql"),
            &[&catalog.plans.keys().collect::<Vec<_>>()],
        )
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    if !missing.is_empty() {
        return Err(ApplyError::PlansInUse(missing));
    }
    let version: i32 = active.map_or(1, |r| r.get::<_, i32>(0) + 1);
    tx.execute(
        include_str!("sql/insert_catalog_version.sql"),
        &[&version, &catalog.label, &text, &digest],
    )
    .await?;
    store_relational(&tx, version, &catalog).await?;
    tx.commit().await?;
    Ok(Applied::New { version })
}

/// The priced cells and plans as rows, for reports.
async fn store_relational(
    tx: &tokio_postgres::Transaction<'_>,
    version: i32,
    catalog: &Catalog,
) -> Result<(), tokio_postgres::Error> {
    let mut ids = Vec::new();
    let mut plans = Vec::new();
    let mut services = Vec::new();
    let mut zones = Vec::new();
    let mut bands = Vec::new();
    let mut units = Vec::new();
    let mut prices = Vec::new();
    let mut wholesale = Vec::new();
    let mut charging = Vec::new();
    let mut fees = Vec::new();
    let mut minimums = Vec::new();
    for (plan, t) in catalog.tariffs() {
        for (band, price) in catalog.bands.iter().zip(&t.prices) {
            ids.push(t.id.as_str());
            plans.push(plan.code.as_str());
            services.push(t.service.as_str());
            zones.push(catalog.zone(t.zone).name.as_str());
            bands.push(band.as_str());
            units.push(t.unit());
            prices.push(*price);
            wholesale.push(t.wholesale);
            charging.push(t.charging.map(|c| c.to_string()));
            fees.push(t.connection_fee);
            minimums.push(t.minimum_charge);
        }
    }
    tx.execute(
        include_str!("sql/insert_catalog_tariffs.sql"),
        &[
            &version, &ids, &plans, &services, &zones, &bands, &units, &prices, &wholesale,
            &charging, &fees, &minimums,
        ],
    )
    .await?;
    let codes: Vec<&str> = catalog.plans.values().map(|p| p.code.as_str()).collect();
    let names: Vec<&str> = catalog.plans.values().map(|p| p.name.as_str()).collect();
    let fees: Vec<_> = catalog.plans.values().map(|p| p.monthly_fee).collect();
    tx.execute(
        include_str!("sql/insert_catalog_plans.sql"),
        &[&version, &codes, &names, &fees],
    )
    .await?;
    Ok(())
}

/// The number of the active version, if any (a cheap check for a newer catalog).
pub async fn active_version(client: &impl GenericClient) -> Result<Option<i32>, StorageError> {
    Ok(client
        .query_one(include_str!("sql/active_catalog_version.sql"), &[])
        .await?
        .get(0))
}

/// Load a version (the active one when `version` is None).
pub async fn load(
    client: &impl GenericClient,
    version: Option<i32>,
) -> Result<Option<Version>, StorageError> {
    let row = client
        .query_opt(include_str!("sql/load_catalog.sql"), &[&version])
        .await?;
    let Some(row) = row else { return Ok(None) };
    let version: i32 = row.get(0);
    let source: String = row.get(4);
    let catalog = Catalog::parse(&source).map_err(|e| {
        StorageError::Catalog(format!("stored version {version} no longer parses: {e}"))
    })?;
    Ok(Some(Version {
        version,
        label: row.get(1),
        sha256: row.get(2),
        applied_at: row.get(3),
        catalog,
    }))
}

/// The text of catalog `version`; an error if there is no such version.
pub async fn source(client: &impl GenericClient, version: i32) -> Result<String, StorageError> {
    let row = client
        .query_one(include_str!("sql/catalog_source.sql"), &[&version])
        .await?;
    Ok(row.get(0))
}
