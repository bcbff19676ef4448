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
    // One applier at a time, so versions are gap-free and "the highest" is well defined.
    tx.execute("LOCK TABLE catalog_versions IN EXCLUSIVE MODE", &[])
        .await?;
    let active = tx
        .query_opt(
            "SELECT version, sha256 FROM catalog_versions ORDER BY version DESC LIMIT 1",
            &[],
        )
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
            "SELECT plan, count(*) FROM customers WHERE plan <> ALL($1::text[]) GROUP BY plan ORDER BY plan",
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
        "INSERT INTO catalog_versions (version, label, source, sha256) VALUES ($1, $2, $3, $4)",
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
        "INSERT INTO catalog_tariffs (version, tariff_id, plan, service, zone, band, unit, price,
                                      wholesale, charging, connection_fee, minimum_charge)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                  $7::text[], $8::numeric[], $9::numeric[], $10::text[],
                                  $11::numeric[], $12::numeric[])",
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
        "INSERT INTO catalog_plans (version, plan, name, monthly_fee)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::numeric[])",
        &[&version, &codes, &names, &fees],
    )
    .await?;
    Ok(())
}

/// The number of the active version, if any (a cheap check for a newer catalog).
pub async fn active_version(client: &impl GenericClient) -> Result<Option<i32>, StorageError> {
    Ok(client
        .query_one("SELECT max(version) FROM catalog_versions", &[])
        .await?
        .get(0))
}

/// Load a version (the active one when `version` is None).
pub async fn load(
    client: &impl GenericClient,
    version: Option<i32>,
) -> Result<Option<Version>, StorageError> {
    let row = client
        .query_opt(
            "SELECT version, label, sha256, applied_at, source FROM catalog_versions
              WHERE version = COALESCE($1, (SELECT max(version) FROM catalog_versions))",
            &[&version],
        )
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
