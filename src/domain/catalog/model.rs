//! The checked catalog, as rating and billing use it: the operator, the discounts, the
//! band of every minute of the week, the zones and how a country finds its zone, the
//! cell reference, and each plan's tariffs and allowances. Only `check` builds one, so
//! every lookup here finds what it asks for.

use crate::domain::record::RecordType;
use chrono_tz::Tz;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

pub const MINUTES_PER_WEEK: usize = 7 * 24 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZoneKind {
    Domestic,
    International,
    Roaming,
}

impl ZoneKind {
    pub(super) fn parse(s: &str) -> Option<Self> {
        match s {
            "domestic" => Some(ZoneKind::Domestic),
            "international" => Some(ZoneKind::International),
            "roaming" => Some(ZoneKind::Roaming),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub kind: ZoneKind,
}

/// Voice charging: the first `first` seconds are charged as a block, then every started
/// `step` seconds (`60/1`: a first minute, then per second; `60/60`: per started minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charging {
    pub first: i64,
    pub step: i64,
}

impl Charging {
    pub fn parse(s: &str) -> Option<Self> {
        let (a, b) = s.split_once('/')?;
        let first: i64 = a.trim().parse().ok()?;
        let step: i64 = b.trim().parse().ok()?;
        (first >= 1 && step >= 1 && first <= 3600 && step <= 3600)
            .then_some(Charging { first, step })
    }

    /// Seconds charged for a call of `seconds`: none for an unanswered (zero) call.
    pub fn charged_seconds(&self, seconds: i64) -> i64 {
        if seconds <= 0 {
            0
        } else if seconds <= self.first {
            self.first
        } else {
            let rest = seconds - self.first;
            self.first + (rest + self.step - 1) / self.step * self.step
        }
    }
}

impl fmt::Display for Charging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.first, self.step)
    }
}

/// One priced plan × service × zone, with a price per band.
#[derive(Debug, Clone, PartialEq)]
pub struct Tariff {
    /// `plan.service.zone`, e.g. `basic.voice.domestic`.
    pub id: String,
    pub service: RecordType,
    pub zone: usize,
    /// Price per unit (minute, message, MB) for each band, indexed like `Catalog::bands`.
    pub prices: Vec<Decimal>,
    /// Interconnect / wholesale cost per unit, whatever the band.
    pub wholesale: Decimal,
    /// Voice only.
    pub charging: Option<Charging>,
    /// Data only: volume is charged per started block of this many KB.
    pub block_kb: i64,
    pub connection_fee: Decimal,
    pub minimum_charge: Decimal,
}

impl Tariff {
    /// The unit prices are per: "min", "sms" or "MB".
    pub fn unit(&self) -> &'static str {
        match self.service {
            RecordType::Voice => "min",
            RecordType::Sms => "sms",
            RecordType::Data => "MB",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Allowance {
    pub service: RecordType,
    pub zones: Vec<usize>,
    /// Seconds for voice (the file says minutes), messages for SMS, KB for data (the
    /// file says MB): the units usage is counted in.
    pub units: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub code: String,
    pub name: String,
    pub monthly_fee: Decimal,
    pub allowances: Vec<Allowance>,
    /// Indexed by `service_index(service) * zones + zone`.
    pub(super) tariffs: Vec<Option<Tariff>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operator {
    pub name: String,
    pub currency: String,
    pub timezone: Tz,
    pub home_country: String,
    pub vat_rate: Decimal,
    pub regulatory_fee: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Discounts {
    pub student: Decimal,
    pub loyalty: Decimal,
    pub loyalty_after_months: u32,
}

/// A checked, rate-ready catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    pub label: String,
    pub operator: Operator,
    pub discounts: Discounts,
    /// Band names, in the order of the file (first appearance).
    pub bands: Vec<String>,
    /// Band index for each minute of the local week, Monday 00:00 first.
    pub(super) week: Vec<u8>,
    /// For each minute of the week, how many minutes until the band changes (at least 1;
    /// a whole week if it never does).
    pub(super) run: Vec<u32>,
    pub zones: Vec<Zone>,
    pub(super) domestic: usize,
    pub(super) international: HashMap<String, usize>,
    pub(super) international_rest: usize,
    pub(super) roaming: HashMap<String, usize>,
    pub(super) roaming_rest: usize,
    /// City → region.
    pub regions: BTreeMap<String, String>,
    /// Cell prefix (the part before `_N`) → city.
    pub cells: BTreeMap<String, String>,
    pub plans: BTreeMap<String, Plan>,
}

pub fn service_index(s: RecordType) -> usize {
    match s {
        RecordType::Voice => 0,
        RecordType::Sms => 1,
        RecordType::Data => 2,
    }
}

pub(super) const SERVICES: [RecordType; 3] = [RecordType::Voice, RecordType::Sms, RecordType::Data];

impl Catalog {
    pub fn band_name(&self, band: usize) -> &str {
        &self.bands[band]
    }

    /// The band in force at a local minute of the week (Monday 00:00 = 0), and how many
    /// minutes it stays in force.
    pub fn band_at(&self, minute_of_week: usize) -> (usize, u32) {
        (self.week[minute_of_week] as usize, self.run[minute_of_week])
    }

    pub fn zone(&self, zone: usize) -> &Zone {
        &self.zones[zone]
    }

    pub fn domestic_zone(&self) -> usize {
        self.domestic
    }

    /// The international zone of a destination country.
    pub fn international_zone(&self, country: Option<&str>) -> usize {
        country
            .and_then(|c| self.international.get(c))
            .copied()
            .unwrap_or(self.international_rest)
    }

    /// The roaming zone of a visited country.
    pub fn roaming_zone(&self, country: &str) -> usize {
        self.roaming
            .get(country)
            .copied()
            .unwrap_or(self.roaming_rest)
    }

    pub fn plan(&self, code: &str) -> Option<&Plan> {
        self.plans.get(code)
    }

    /// City and region of a cell id (`CASABLANCA_12`), through the catalog's reference.
    pub fn locate(&self, cell_id: &str) -> Option<(&str, &str)> {
        let prefix = match cell_id.rsplit_once('_') {
            Some((city, sector)) if sector.bytes().all(|b| b.is_ascii_digit()) => city,
            _ => cell_id,
        };
        // Normalized cell ids are upper case already; anything else is looked up as written.
        let city = match self.cells.get(prefix) {
            Some(city) => city,
            None => self.cells.get(&prefix.to_ascii_uppercase())?,
        };
        let region = self.regions.get(city)?;
        Some((city.as_str(), region.as_str()))
    }

    /// Every tariff with its plan, for storing the catalog relationally.
    pub fn tariffs(&self) -> impl Iterator<Item = (&Plan, &Tariff)> {
        self.plans
            .values()
            .flat_map(|p| p.tariffs.iter().flatten().map(move |t| (p, t)))
    }
}

impl Plan {
    pub fn tariff(&self, zones: usize, service: RecordType, zone: usize) -> Option<&Tariff> {
        self.tariffs
            .get(service_index(service) * zones + zone)
            .and_then(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charging_schemes_round_up_to_their_steps() {
        let c = |s: &str| Charging::parse(s).unwrap();
        assert_eq!(c("60/1").charged_seconds(1), 60);
        assert_eq!(c("60/1").charged_seconds(61), 61);
        assert_eq!(c("60/60").charged_seconds(61), 120);
        assert_eq!(c("30/30").charged_seconds(31), 60);
        assert_eq!(c("30/30").charged_seconds(0), 0);
        assert_eq!(Charging::parse("0/1"), None);
        assert_eq!(Charging::parse("60"), None);
    }
}
