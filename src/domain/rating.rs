//! Rating: the price of one event under one catalog and plan. Stateless and
//! deterministic: the same event, plan and catalog always give the same `Rating`, which
//! is how `cdrflow explain` can show the arithmetic of a stored price long after.
//!
//! - The zone: roaming by the visited country when the subscriber is abroad; otherwise
//!   international by the peer's country for voice and SMS; otherwise domestic.
//! - Voice: the charged duration (`Charging`, e.g. 60/1) is laid on the clock from the
//!   call's start and split at band boundaries in the operator's time zone, to the
//!   second; each part is priced per minute in its band. So a longer call never costs
//!   less, and the rounding-up of the last step is priced in the band where it falls.
//!   The connection fee is added once; a minimum charge tops the call up to itself.
//!   A zero-second (unanswered) call is not charged at all.
//! - SMS: one message at the price of the band it was sent in.
//! - Data: per started KB (or per started `block_kb`), priced per MB, in the band in
//!   which the session started.
//!
//! Time is rated to the second: an event time with a fraction of a second is taken from
//! the start of its second.
//!
//! Every amount is rounded half away from zero to 6 decimals per part; the event's
//! amount is the sum of its parts, fee and top-up, so the explanation adds up exactly.

use super::catalog::{Catalog, Tariff, ZoneKind};
use super::msisdn::PeerClass;
use super::normalize::NormalizedCdr;
use super::record::RecordType;
use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeDelta, Timelike, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use std::fmt::Write as _;

/// Event amounts are kept at this many decimals.
pub const AMOUNT_DECIMALS: u32 = 6;

pub fn round_amount(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(AMOUNT_DECIMALS, RoundingStrategy::MidpointAwayFromZero)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RatingError {
    #[error("plan {0:?} is not in the catalog")]
    UnknownPlan(String),
    #[error("plan {plan:?} has no price for {service} in zone {zone:?}")]
    NoTariff {
        plan: String,
        service: &'static str,
        zone: String,
    },
    #[error("a {0} record without its {1}")]
    MissingQuantity(&'static str, &'static str),
}

/// One band's part of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub band: String,
    /// Where the part starts on the clock.
    pub from: DateTime<Utc>,
    /// Charged units in this part: seconds, messages or KB.
    pub units: i64,
    /// Price per minute, message or MB.
    pub price: Decimal,
    pub amount: Decimal,
}

/// The price of one event, with everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rating {
    pub plan: String,
    pub tariff_id: String,
    pub service: RecordType,
    pub zone: String,
    /// First day of the billing month, in the operator's time zone.
    pub period: NaiveDate,
    /// Measured units: seconds, messages, KB (rounded up to whole KB).
    pub measured: i64,
    /// Charged units after the charging increments or data blocks.
    pub units: i64,
    pub parts: Vec<Part>,
    pub connection_fee: Decimal,
    pub minimum_topup: Decimal,
    pub amount: Decimal,
    /// Interconnect / wholesale cost of the charged units.
    pub cost: Decimal,
}

/// The billing period (first day of the month, operator time) of an instant.
pub fn period_of(catalog: &Catalog, at: DateTime<Utc>) -> NaiveDate {
    let local = at.with_timezone(&catalog.operator.timezone);
    NaiveDate::from_ymd_opt(local.year(), local.month(), 1).expect("day 1 exists")
}

/// The zone an event is priced in.
pub fn zone_of(catalog: &Catalog, cdr: &NormalizedCdr) -> usize {
    match cdr.roaming_country.as_deref() {
        Some(visited) if visited != catalog.operator.home_country => {
            return catalog.roaming_zone(visited)
        }
        _ => {}
    }
    match (cdr.record_type, cdr.peer_class) {
        (RecordType::Data, _) => catalog.domestic_zone(),
        (_, Some(PeerClass::International)) => {
            catalog.international_zone(cdr.peer_country.as_deref())
        }
        _ => catalog.domestic_zone(),
    }
}

/// Price `cdr` for a subscriber on `plan`.
pub fn rate(catalog: &Catalog, plan: &str, cdr: &NormalizedCdr) -> Result<Rating, RatingError> {
    let p = catalog
        .plan(plan)
        .ok_or_else(|| RatingError::UnknownPlan(plan.to_string()))?;
    let zone = zone_of(catalog, cdr);
    let at = cdr.event_time.with_nanosecond(0).unwrap_or(cdr.event_time);
    let tariff = p
        .tariff(catalog.zones.len(), cdr.record_type, zone)
        .ok_or_else(|| RatingError::NoTariff {
            plan: plan.to_string(),
            service: cdr.record_type.as_str(),
            zone: catalog.zone(zone).name.clone(),
        })?;
    let (measured, units, parts, cost) = match cdr.record_type {
        RecordType::Voice => {
            let seconds = cdr
                .duration_sec
                .ok_or(RatingError::MissingQuantity("voice", "duration"))?
                as i64;
            let charging = tariff.charging.unwrap_or(super::catalog::Charging {
                first: 60,
                step: 60,
            });
            let charged = charging.charged_seconds(seconds);
            let parts = split(catalog, at, charged)
                .into_iter()
                .map(|(band, from, secs)| {
                    let price = tariff.prices[band];
                    Part {
                        band: catalog.band_name(band).to_string(),
                        from,
                        units: secs,
                        price,
                        amount: round_amount(price * Decimal::from(secs) / Decimal::from(60)),
                    }
                })
                .collect();
            let cost = round_amount(tariff.wholesale * Decimal::from(charged) / Decimal::from(60));
            (seconds, charged, parts, cost)
        }
        RecordType::Sms => {
            let part = single_part(catalog, tariff, at, 1, tariff_price_one);
            (1, 1, vec![part], round_amount(tariff.wholesale))
        }
        RecordType::Data => {
            let bytes = cdr
                .volume_bytes
                .ok_or(RatingError::MissingQuantity("data", "volume"))?;
            let kb = (bytes + 1023) / 1024;
            let charged = (kb + tariff.block_kb - 1) / tariff.block_kb * tariff.block_kb;
            let parts = if charged > 0 {
                vec![single_part(
                    catalog,
                    tariff,
                    cdr.event_time,
                    charged,
                    |price| per_mb(price, charged),
                )]
            } else {
                Vec::new()
            };
            let cost =
                round_amount(tariff.wholesale * Decimal::from(charged) / Decimal::from(1024));
            (kb, charged, parts, cost)
        }
    };
    let connection_fee = if units > 0 {
        tariff.connection_fee
    } else {
        Decimal::ZERO
    };
    let subtotal: Decimal = parts.iter().map(|p: &Part| p.amount).sum::<Decimal>() + connection_fee;
    let minimum_topup = if units > 0 && subtotal < tariff.minimum_charge {
        tariff.minimum_charge - subtotal
    } else {
        Decimal::ZERO
    };
    Ok(Rating {
        plan: plan.to_string(),
        tariff_id: tariff.id.clone(),
        service: cdr.record_type,
        zone: catalog.zone(zone).name.clone(),
        period: period_of(catalog, cdr.event_time),
        measured,
        units,
        parts,
        connection_fee,
        minimum_topup,
        amount: (subtotal + minimum_topup).normalize(),
        cost,
    })
}

fn tariff_price_one(price: Decimal) -> Decimal {
    round_amount(price)
}

fn per_mb(price: Decimal, kb: i64) -> Decimal {
    round_amount(price * Decimal::from(kb) / Decimal::from(1024))
}

fn single_part(
    catalog: &Catalog,
    tariff: &Tariff,
    at: DateTime<Utc>,
    units: i64,
    amount: impl FnOnce(Decimal) -> Decimal,
) -> Part {
    let band = band_at(catalog, at).0;
    let price = tariff.prices[band];
    Part {
        band: catalog.band_name(band).to_string(),
        from: at,
        units,
        price,
        amount: amount(price),
    }
}

/// The band at an instant and how many whole seconds it lasts from there on the local
/// wall clock (ignoring a time-zone offset change, which `split` looks for itself).
fn band_at(catalog: &Catalog, at: DateTime<Utc>) -> (usize, i64) {
    let local = at.with_timezone(&catalog.operator.timezone);
    let minute = local.weekday().num_days_from_monday() as usize * 1440
        + local.hour() as usize * 60
        + local.minute() as usize;
    let (band, run) = catalog.band_at(minute);
    (band, run as i64 * 60 - local.second() as i64)
}

/// Lay `seconds` on the clock from `start` and cut them at every band change: (band,
/// start of the part, seconds), in time order, neighbours in the same band merged.
/// A change of UTC offset (DST) ends a part too, since local wall-clock time jumps there;
/// the time-zone library says where.
pub fn split(
    catalog: &Catalog,
    start: DateTime<Utc>,
    seconds: i64,
) -> Vec<(usize, DateTime<Utc>, i64)> {
    let tz = catalog.operator.timezone;
    let offset_at = |t: DateTime<Utc>| t.with_timezone(&tz).offset().fix();
    let mut parts: Vec<(usize, DateTime<Utc>, i64)> = Vec::new();
    let mut t = start;
    let mut left = seconds;
    while left > 0 {
        let (band, mut span) = band_at(catalog, t);
        let offset = offset_at(t);
        if offset_at(t + TimeDelta::seconds(span.min(left))) != offset {
            // The first second at which the offset differs: binary search, at most ~20 steps.
            let (mut lo, mut hi) = (0i64, span.min(left));
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset_at(t + TimeDelta::seconds(mid)) == offset {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            span = hi;
        }
        let take = span.min(left).max(1);
        match parts.last_mut() {
            Some((b, _, secs)) if *b == band => *secs += take,
            _ => parts.push((band, t, take)),
        }
        t += TimeDelta::seconds(take);
        left -= take;
    }
    parts
}

impl Rating {
    /// What a customer-care agent reads out: the tariff, each part with its arithmetic,
    /// fee, minimum and total.
    pub fn explain(&self, catalog: &Catalog) -> Vec<String> {
        let tz = catalog.operator.timezone;
        let cur = &catalog.operator.currency;
        let tariff = catalog.plan(&self.plan).and_then(|p| {
            let zone = catalog.zones.iter().position(|z| z.name == self.zone)?;
            p.tariff(catalog.zones.len(), self.service, zone)
        });
        let mut out = Vec::new();
        let kind = catalog
            .zones
            .iter()
            .find(|z| z.name == self.zone)
            .map(|z| match z.kind {
                ZoneKind::Domestic => "domestic",
                ZoneKind::International => "international",
                ZoneKind::Roaming => "roaming",
            })
            .unwrap_or("?");
        out.push(format!(
            "Tariff {}: plan {}, zone {} ({kind}), billing period {}",
            self.tariff_id,
            self.plan,
            self.zone,
            self.period.format("%Y-%m")
        ));
        match self.service {
            RecordType::Voice => {
                let charging = tariff
                    .and_then(|t| t.charging)
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "?".into());
                out.push(format!(
                    "Duration {} s, charged {} s under {} (first block / then per step, seconds)",
                    self.measured, self.units, charging
                ));
            }
            RecordType::Sms => out.push("1 message".to_string()),
            RecordType::Data => {
                let block = tariff.map_or(1, |t| t.block_kb);
                out.push(format!(
                    "Volume {} KB (started KB), charged {} KB in blocks of {} KB",
                    self.measured, self.units, block
                ));
            }
        }
        for p in &self.parts {
            let from = p.from.with_timezone(&tz);
            let mut line = format!(
                "  {:<8} from {} ",
                p.band,
                from.format("%a %Y-%m-%d %H:%M:%S %Z")
            );
            let _ = match self.service {
                RecordType::Voice => write!(
                    line,
                    "{} s × {} {cur}/min ÷ 60 = {}",
                    p.units,
                    p.price,
                    fixed(p.amount)
                ),
                RecordType::Sms => write!(line, "1 × {} {cur}/sms = {}", p.price, fixed(p.amount)),
                RecordType::Data => write!(
                    line,
                    "{} KB × {} {cur}/MB ÷ 1024 = {}",
                    p.units,
                    p.price,
                    fixed(p.amount)
                ),
            };
            out.push(line);
        }
        if !self.connection_fee.is_zero() {
            out.push(format!("  connection fee = {}", fixed(self.connection_fee)));
        }
        if let Some(t) = tariff {
            if !t.minimum_charge.is_zero() {
                if self.minimum_topup.is_zero() {
                    out.push(format!(
                        "  minimum charge {} {cur}: already reached",
                        t.minimum_charge
                    ));
                } else {
                    out.push(format!(
                        "  minimum charge {} {cur}: top-up = {}",
                        t.minimum_charge,
                        fixed(self.minimum_topup)
                    ));
                }
            }
        }
        out.push(format!(
            "Amount {} {cur} (before allowances, discounts and VAT, which apply on the invoice)",
            fixed(self.amount)
        ));
        out.push(format!("Wholesale cost {} {cur}", fixed(self.cost)));
        out
    }
}

/// An amount shown with its 6 decimals.
pub fn fixed(d: Decimal) -> String {
    let mut d = d;
    d.rescale(AMOUNT_DECIMALS);
    d.to_string()
}

#[cfg(test)]
#[path = "rating_tests.rs"]
pub(crate) mod tests;
