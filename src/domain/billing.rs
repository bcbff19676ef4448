//! Billing math: a customer's month as usage *buckets*, the allowances and discounts laid
//! on them, and the invoice. Pure and deterministic: the same buckets, customer,
//! adjustments and catalog always give the same invoice, to the byte once serialized,
//! whatever order the events arrived in. Month-to-date estimates and the closed
//! invoice are the same function.
//!
//! - A bucket is one (tariff, band, catalog version) of one customer and period: the
//!   units, events and gross amount of every event part priced there. The unit price is
//!   a function of that key, so a bucket has one price.
//! - Allowances cover the most expensive covered units first: buckets of the allowance's
//!   service and zones, by unit price, highest first (ties by key).
//! - Every line is rounded half-up (away from zero) to the currency's minor unit; the
//!   subtotal is the sum of the lines, VAT is taken on that rounded subtotal, and the
//!   total is their sum: the lines always add up to the total exactly.
//! - Student and loyalty discounts are applied once, each on the same base (usage after
//!   allowances plus the plan fee), as their own lines; they do not compound.
//! - Adjustments (usage that arrived after its period was invoiced, re-rating of a
//!   closed period) are dated lines, neither discounted nor covered by allowances.

use super::catalog::{Catalog, Plan};
use super::rating::{round_amount, Rating};
use super::record::RecordType;
use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What identifies a bucket within one customer's period.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketKey {
    pub tariff_id: String,
    pub band: String,
    pub catalog_version: i32,
}

/// Usage priced at one unit price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub service: RecordType,
    pub zone: String,
    /// Per minute (voice), message (SMS) or MB (data).
    pub price: Decimal,
    /// Charged units: seconds, messages, KB.
    pub units: i64,
    /// Events counted where they start (a split call counts once).
    pub events: i64,
    /// The parts' amounts: what allowances can cover.
    pub amount: Decimal,
    /// Connection fees and minimum-charge top-ups: billed, never covered.
    pub extra: Decimal,
    pub cost: Decimal,
}

impl Bucket {
    pub fn gross(&self) -> Decimal {
        self.amount + self.extra
    }
}

/// The band of an event with no charged units (an unanswered call, an empty session):
/// it is counted, at no charge.
pub const NO_BAND: &str = "-";

/// One customer's usage in one period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub buckets: BTreeMap<BucketKey, Bucket>,
}

impl Usage {
    /// Add one rated event.
    pub fn add(&mut self, catalog_version: i32, r: &Rating) {
        let first_band = r.parts.first().map_or(NO_BAND, |p| p.band.as_str());
        for (i, (band, units, price, amount)) in r
            .parts
            .iter()
            .map(|p| (p.band.as_str(), p.units, p.price, p.amount))
            .chain(
                r.parts
                    .is_empty()
                    .then_some((first_band, 0, Decimal::ZERO, Decimal::ZERO)),
            )
            .enumerate()
        {
            let first = i == 0;
            self.add_bucket(
                BucketKey {
                    tariff_id: r.tariff_id.clone(),
                    band: band.to_string(),
                    catalog_version,
                },
                Bucket {
                    service: r.service,
                    zone: r.zone.clone(),
                    price,
                    units,
                    events: first as i64,
                    amount,
                    extra: if first {
                        r.connection_fee + r.minimum_topup
                    } else {
                        Decimal::ZERO
                    },
                    cost: if first { r.cost } else { Decimal::ZERO },
                },
            );
        }
    }

    pub fn add_bucket(&mut self, key: BucketKey, b: Bucket) {
        match self.buckets.get_mut(&key) {
            Some(have) => {
                have.units += b.units;
                have.events += b.events;
                have.amount += b.amount;
                have.extra += b.extra;
                have.cost += b.cost;
            }
            None => {
                self.buckets.insert(key, b);
            }
        }
    }

    pub fn merge(&mut self, other: Usage) {
        for (k, b) in other.buckets {
            self.add_bucket(k, b);
        }
    }

    /// The gross amount rated, before allowances: Σ of the events' amounts.
    pub fn gross(&self) -> Decimal {
        self.buckets.values().map(Bucket::gross).sum()
    }

    pub fn events(&self) -> i64 {
        self.buckets.values().map(|b| b.events).sum()
    }
}

/// Units per priced unit: seconds per minute, KB per MB.
fn per_price_unit(service: RecordType) -> i64 {
    match service {
        RecordType::Voice => 60,
        RecordType::Sms => 1,
        RecordType::Data => 1024,
    }
}

/// How much of one allowance a period used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowanceUse {
    pub service: String,
    pub zones: Vec<String>,
    /// In the units the invoice shows: minutes, messages, MB.
    pub unit: String,
    pub granted: Decimal,
    pub used: Decimal,
    pub left: Decimal,
    /// The gross amount of the covered units (6 decimals).
    pub credit: Decimal,
}

/// Lay the plan's allowances on `usage`, most expensive covered units first.
pub fn allowances(catalog: &Catalog, plan: &Plan, usage: &Usage) -> Vec<AllowanceUse> {
    // Units of each bucket already covered, and the credit given on it, so that two
    // allowances over the same bucket never cover a unit twice.
    let mut covered: BTreeMap<&BucketKey, (i64, Decimal)> = BTreeMap::new();
    let mut out = Vec::new();
    for a in &plan.allowances {
        let zones: Vec<&str> = a
            .zones
            .iter()
            .map(|&z| catalog.zone(z).name.as_str())
            .collect();
        let mut candidates: Vec<(&BucketKey, &Bucket)> = usage
            .buckets
            .iter()
            .filter(|(_, b)| b.service == a.service && zones.contains(&b.zone.as_str()))
            .filter(|(_, b)| b.units > 0)
            .collect();
        candidates.sort_by(|x, y| y.1.price.cmp(&x.1.price).then_with(|| x.0.cmp(y.0)));
        let mut left = a.units;
        let mut credit = Decimal::ZERO;
        for (key, b) in candidates {
            if left == 0 {
                break;
            }
            let (done, credited) = covered.get(key).copied().unwrap_or_default();
            let take = left.min(b.units - done);
            if take <= 0 {
                continue;
            }
            let c = if done + take == b.units {
                // The bucket's last units: exactly what is left of its amount, so a
                // fully covered bucket is credited to the last decimal.
                b.amount - credited
            } else {
                round_amount(
                    b.price * Decimal::from(take) / Decimal::from(per_price_unit(b.service)),
                )
                .min(b.amount - credited)
            };
            covered.insert(key, (done + take, credited + c));
            credit += c;
            left -= take;
        }
        let div = Decimal::from(per_price_unit(a.service));
        let shown = |units: i64| fixed(Decimal::from(units) / div, 2);
        out.push(AllowanceUse {
            service: a.service.as_str().to_string(),
            zones: zones.iter().map(|z| z.to_string()).collect(),
            unit: display_unit(a.service).to_string(),
            granted: shown(a.units),
            used: shown(a.units - left),
            left: shown(left),
            credit: fixed(credit, 6),
        });
    }
    out
}

fn display_unit(service: RecordType) -> &'static str {
    match service {
        RecordType::Voice => "min",
        RecordType::Sms => "SMS",
        RecordType::Data => "MB",
    }
}

/// `d` rounded half away from zero to `dp` decimals and always written with them.
pub fn fixed(d: Decimal, dp: u32) -> Decimal {
    let mut r = d.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(dp);
    r
}

/// Decimals of a currency's minor unit (ISO 4217), 2 when the code is unknown.
pub fn minor_unit(currency: &str) -> u32 {
    iso_currency::Currency::from_code(currency)
        .and_then(|c| c.exponent())
        .map_or(2, u32::from)
}

/// The customer as the invoice needs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillTo {
    pub id: i64,
    pub name: String,
    pub msisdn: String,
    pub plan: String,
    pub region: Option<String>,
    pub is_student: bool,
    pub activated_on: NaiveDate,
}

/// Why an adjustment line exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentKind {
    /// Usage that arrived after its period was invoiced.
    Late,
    /// A closed period's events priced again with a newer catalog.
    Rerate,
}

impl AdjustmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AdjustmentKind::Late => "late",
            AdjustmentKind::Rerate => "rerate",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "late" => Some(AdjustmentKind::Late),
            "rerate" => Some(AdjustmentKind::Rerate),
            _ => None,
        }
    }
}

/// Adjustments owed from closed periods, one per kind and event day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    pub kind: AdjustmentKind,
    /// The day of the events, operator time.
    pub date: NaiveDate,
    pub events: i64,
    /// 6 decimals, as rated.
    pub amount: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Usage,
    PlanFee,
    Allowance,
    Discount,
    Adjustment,
    RegulatoryFee,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Usage => "usage",
            LineKind::PlanFee => "plan_fee",
            LineKind::Allowance => "allowance",
            LineKind::Discount => "discount",
            LineKind::Adjustment => "adjustment",
            LineKind::RegulatoryFee => "regulatory_fee",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub kind: LineKind,
    pub description: String,
    /// voice, sms or data for usage and allowance lines.
    pub service: Option<String>,
    /// The day an adjustment's events happened.
    pub date: Option<NaiveDate>,
    pub quantity: Option<Decimal>,
    pub unit: Option<String>,
    /// The exact rated amount behind a usage or adjustment line (6 decimals).
    pub rated: Option<Decimal>,
    /// Rounded to the minor unit; credits are negative.
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seller {
    pub name: String,
    pub currency: String,
    pub timezone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// From the gap-free sequence; empty on a month-to-date estimate.
    pub number: String,
    pub seller: Seller,
    pub customer: BillTo,
    pub plan_name: String,
    /// First and last day of the billing month.
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub catalog_version: i32,
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    pub subtotal: Decimal,
    pub vat_rate: Decimal,
    pub vat: Decimal,
    pub total: Decimal,
    pub allowances: Vec<AllowanceUse>,
    /// When it was generated: the only field that differs between two runs.
    pub issued_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    #[error(
        "customer {customer} is on plan {plan:?}, which catalog version {version} does not have"
    )]
    UnknownPlan {
        customer: i64,
        plan: String,
        version: i32,
    },
    #[error("{0} is not the first day of a month")]
    NotAPeriod(NaiveDate),
}

/// The last day of the month that starts on `period`.
pub fn period_end(period: NaiveDate) -> NaiveDate {
    period
        .checked_add_months(Months::new(1))
        .and_then(|d| d.pred_opt())
        .unwrap_or(period)
}

/// A period from `YYYY-MM`.
pub fn parse_period(s: &str) -> Option<NaiveDate> {
    let (y, m) = s.trim().split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1)
}

/// Whether the customer has the tenure for the loyalty discount at the period's end.
pub fn loyal(activated_on: NaiveDate, months: u32, period: NaiveDate) -> bool {
    activated_on
        .checked_add_months(Months::new(months))
        .is_some_and(|d| d <= period_end(period))
}

/// A period's plan fee as charged to a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanFee {
    pub amount: Decimal,
    /// In the month of activation: (days active, days in the month).
    pub days: Option<(u32, u32)>,
}

/// The plan fee of `period` for a customer activated on `activated_on`: nothing for a
/// period that ends before the activation, the whole fee once active all month, and in
/// the month of activation the fee prorated by days active, from the activation day to
/// the month's last day inclusive. None when nothing is charged.
pub fn plan_fee(
    monthly_fee: Decimal,
    activated_on: NaiveDate,
    period: NaiveDate,
) -> Option<PlanFee> {
    let last = period_end(period);
    if monthly_fee.is_zero() || activated_on > last {
        return None;
    }
    if activated_on <= period {
        return Some(PlanFee {
            amount: monthly_fee,
            days: None,
        });
    }
    let of = last.day();
    let active = of - activated_on.day() + 1;
    Some(PlanFee {
        amount: monthly_fee * Decimal::from(active) / Decimal::from(of),
        days: Some((active, of)),
    })
}

/// The invoice (or, without a number, the month-to-date estimate) of one customer and
/// period.
pub fn invoice(
    catalog: &Catalog,
    catalog_version: i32,
    customer: &BillTo,
    period: NaiveDate,
    usage: &Usage,
    adjustments: &[Adjustment],
) -> Result<Invoice, BillingError> {
    if period.day() != 1 {
        return Err(BillingError::NotAPeriod(period));
    }
    let plan = catalog
        .plan(&customer.plan)
        .ok_or_else(|| BillingError::UnknownPlan {
            customer: customer.id,
            plan: customer.plan.clone(),
            version: catalog_version,
        })?;
    let dp = minor_unit(&catalog.operator.currency);
    let money = |d: Decimal| fixed(d, dp);
    let mut lines = Vec::new();

    for service in RecordType::ALL {
        let of: Vec<&Bucket> = usage
            .buckets
            .values()
            .filter(|b| b.service == service)
            .collect();
        if of.is_empty() {
            continue;
        }
        let units: i64 = of.iter().map(|b| b.units).sum();
        let events: i64 = of.iter().map(|b| b.events).sum();
        let rated: Decimal = of.iter().map(|b| b.gross()).sum();
        let (description, quantity) = match service {
            RecordType::Voice => (
                format!("Voice calls ({events})"),
                Decimal::from(units) / Decimal::from(60),
            ),
            RecordType::Sms => (format!("SMS ({events})"), Decimal::from(units)),
            RecordType::Data => (
                format!("Mobile data ({events} sessions)"),
                Decimal::from(units) / Decimal::from(1024),
            ),
        };
        lines.push(InvoiceLine {
            kind: LineKind::Usage,
            description,
            service: Some(service.as_str().to_string()),
            date: None,
            quantity: Some(fixed(quantity, 2)),
            unit: Some(display_unit(service).to_string()),
            rated: Some(fixed(rated, 6)),
            amount: money(rated),
        });
    }
    if let Some(fee) = plan_fee(plan.monthly_fee, customer.activated_on, period) {
        lines.push(InvoiceLine {
            kind: LineKind::PlanFee,
            description: match fee.days {
                Some((active, of)) => format!("Monthly fee, {} ({active}/{of} days)", plan.name),
                None => format!("Monthly fee, {}", plan.name),
            },
            service: None,
            date: None,
            quantity: None,
            unit: None,
            rated: None,
            amount: money(fee.amount),
        });
    }
    let used = allowances(catalog, plan, usage);
    for a in &used {
        if a.credit.is_zero() {
            continue;
        }
        lines.push(InvoiceLine {
            kind: LineKind::Allowance,
            description: format!(
                "Included {} {}{} ({}): {} used",
                a.granted.normalize(),
                a.unit,
                // "100 SMS", not "100 SMS sms"
                if a.service == "sms" {
                    String::new()
                } else {
                    format!(" {}", a.service)
                },
                a.zones.join(", "),
                a.used.normalize()
            ),
            service: Some(a.service.clone()),
            date: None,
            quantity: Some(a.used),
            unit: Some(a.unit.clone()),
            rated: Some(-a.credit),
            amount: -money(a.credit),
        });
    }
    let base: Decimal = lines
        .iter()
        .map(|l| l.amount)
        .sum::<Decimal>()
        .max(Decimal::ZERO);
    let discounts = &catalog.discounts;
    let mut discount = |applies: bool, rate: Decimal, what: String| {
        if applies && !rate.is_zero() && !base.is_zero() {
            lines.push(InvoiceLine {
                kind: LineKind::Discount,
                description: format!(
                    "{what} discount {}%",
                    (rate * Decimal::ONE_HUNDRED).normalize()
                ),
                service: None,
                date: None,
                quantity: None,
                unit: None,
                rated: None,
                amount: -money(base * rate),
            });
        }
    };
    discount(
        customer.is_student,
        discounts.student,
        "Student".to_string(),
    );
    discount(
        loyal(
            customer.activated_on,
            discounts.loyalty_after_months,
            period,
        ),
        discounts.loyalty,
        format!("Loyalty ({} months)", discounts.loyalty_after_months),
    );
    let mut adjustments = adjustments.to_vec();
    adjustments.sort_by(|a, b| (a.date, a.kind).cmp(&(b.date, b.kind)));
    for a in &adjustments {
        let what = match a.kind {
            AdjustmentKind::Late => "Late usage",
            AdjustmentKind::Rerate => "Re-rating",
        };
        lines.push(InvoiceLine {
            kind: LineKind::Adjustment,
            description: format!(
                "{what} of {} ({} event{})",
                a.date,
                a.events,
                if a.events == 1 { "" } else { "s" }
            ),
            service: None,
            date: Some(a.date),
            quantity: None,
            unit: None,
            rated: Some(fixed(a.amount, 6)),
            amount: money(a.amount),
        });
    }
    if !catalog.operator.regulatory_fee.is_zero() {
        lines.push(InvoiceLine {
            kind: LineKind::RegulatoryFee,
            description: "Regulatory fee".to_string(),
            service: None,
            date: None,
            quantity: None,
            unit: None,
            rated: None,
            amount: money(catalog.operator.regulatory_fee),
        });
    }
    let subtotal: Decimal = money(lines.iter().map(|l| l.amount).sum());
    let vat = money(subtotal * catalog.operator.vat_rate);
    Ok(Invoice {
        number: String::new(),
        seller: Seller {
            name: catalog.operator.name.clone(),
            currency: catalog.operator.currency.clone(),
            timezone: catalog.operator.timezone.name().to_string(),
        },
        customer: customer.clone(),
        plan_name: plan.name.clone(),
        period_start: period,
        period_end: period_end(period),
        catalog_version,
        currency: catalog.operator.currency.clone(),
        lines,
        subtotal,
        vat_rate: catalog.operator.vat_rate.normalize(),
        vat,
        total: money(subtotal + vat),
        allowances: used,
        issued_at: None,
    })
}

/// A cheap ceiling of the invoice total: gross usage, plan fee and regulatory fee with
/// VAT, before allowances and discounts (which only lower it; the rounding of at most a
/// few lines is covered by one minor unit a line). Lets the accumulators skip the full
/// invoice for customers far from their limit.
pub fn total_ceiling(
    catalog: &Catalog,
    customer: &BillTo,
    usage: &Usage,
    adjustments: &[Adjustment],
) -> Decimal {
    let owed: Decimal = adjustments
        .iter()
        .map(|a| a.amount.max(Decimal::ZERO))
        .sum();
    let fee = catalog
        .plan(&customer.plan)
        .map_or(Decimal::ZERO, |p| p.monthly_fee);
    let lines = Decimal::from(8);
    let minor = Decimal::new(1, minor_unit(&catalog.operator.currency));
    (usage.gross().max(Decimal::ZERO)
        + owed
        + fee
        + catalog.operator.regulatory_fee
        + lines * minor)
        * (Decimal::ONE + catalog.operator.vat_rate)
        + minor
}

/// Credit-limit thresholds, in percent, that raise an alert once per period.
pub const ALERT_THRESHOLDS: [i16; 2] = [80, 100];

/// The thresholds that `total` has reached against `limit` and that are not in `raised`.
pub fn thresholds_reached(total: Decimal, limit: Decimal, raised: &[i16]) -> Vec<i16> {
    if limit <= Decimal::ZERO {
        return Vec::new();
    }
    ALERT_THRESHOLDS
        .into_iter()
        .filter(|t| !raised.contains(t))
        .filter(|&t| total * Decimal::ONE_HUNDRED >= limit * Decimal::from(t))
        .collect()
}

#[cfg(test)]
#[path = "billing_tests.rs"]
mod tests;
