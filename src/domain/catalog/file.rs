//! The catalog file as the operator writes it: plain serde structs that refuse unknown
//! fields. Money is a string here, never a TOML float, so no amount loses exactness
//! before `check` reads it as a decimal.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCatalog {
    pub(super) label: String,
    pub(super) operator: RawOperator,
    pub(super) discounts: RawDiscounts,
    pub(super) bands: Vec<RawBand>,
    pub(super) zones: Vec<RawZone>,
    #[serde(default)]
    pub(super) regions: Vec<RawRegion>,
    #[serde(default)]
    pub(super) cells: BTreeMap<String, String>,
    pub(super) plans: Vec<RawPlan>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOperator {
    pub(super) name: String,
    pub(super) currency: String,
    pub(super) timezone: String,
    pub(super) home_country: String,
    pub(super) vat_rate: String,
    pub(super) regulatory_fee: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscounts {
    pub(super) student: String,
    pub(super) loyalty: String,
    pub(super) loyalty_after_months: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBand {
    pub(super) name: String,
    pub(super) days: Vec<String>,
    pub(super) from: String,
    pub(super) to: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZone {
    pub(super) name: String,
    pub(super) kind: String,
    #[serde(default)]
    pub(super) countries: Vec<String>,
    #[serde(default)]
    pub(super) rest_of_world: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegion {
    pub(super) name: String,
    pub(super) cities: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlan {
    pub(super) code: String,
    pub(super) name: String,
    pub(super) monthly_fee: String,
    #[serde(default)]
    pub(super) allowances: Vec<RawAllowance>,
    pub(super) tariffs: Vec<RawTariff>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAllowance {
    pub(super) service: String,
    pub(super) zones: Vec<String>,
    pub(super) units: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTariff {
    pub(super) service: String,
    pub(super) zone: String,
    pub(super) prices: BTreeMap<String, String>,
    pub(super) wholesale: String,
    pub(super) charging: Option<String>,
    pub(super) block_kb: Option<i64>,
    pub(super) connection_fee: Option<String>,
    pub(super) minimum_charge: Option<String>,
}
