//! The rating catalog: plans, tariffs, zones, time bands, allowances, discounts, taxes,
//! fees and the cell → city → region reference, as the operator writes it (TOML) and
//! as rating trusts it once checked.
//!
//! `Catalog::parse` is the only way to get a `Catalog`: it reads the file into plain
//! `Raw*` structs (serde, unknown fields refused), then checks everything an operator can
//! get wrong and names the place of each problem (`plans[basic].tariffs[voice/domestic]
//! .prices.peak: ...`). After that, rating never meets a missing price, an unknown zone or
//! a minute of the week without a band.
//!
//! - `file`: the file's schema, the `Raw*` structs serde reads;
//! - `check`: the checks, the problems they name, and the building of the model;
//! - `model`: the checked catalog rating and billing use.

mod check;
mod file;
mod model;
#[cfg(test)]
pub(crate) mod tests;

pub use check::{CatalogError, CatalogProblem};
pub use model::{
    service_index, Allowance, Catalog, Charging, Discounts, Operator, Plan, Tariff, Zone, ZoneKind,
    MINUTES_PER_WEEK,
};

use check::Checker;
use file::RawCatalog;

impl Catalog {
    /// Parse and check a catalog file.
    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog = toml::from_str(text)
            .map_err(|e| CatalogError::one("file", e.to_string().trim_end().to_string()))?;
        Checker::default().check(raw)
    }
}
