//! The catalog's checks: everything an operator can get wrong in the file, each problem
//! named with its place, all of them reported at once; and, when there are none, the
//! checked [`Catalog`] built from the file.

use super::file::{RawBand, RawCatalog, RawOperator, RawPlan, RawRegion, RawTariff, RawZone};
use super::model::{
    service_index, Allowance, Catalog, Charging, Discounts, Operator, Plan, Tariff, Zone, ZoneKind,
    MINUTES_PER_WEEK, SERVICES,
};
use crate::domain::record::RecordType;
use chrono::Weekday;
use chrono_tz::Tz;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// A problem in a catalog file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogProblem {
    pub place: String,
    pub problem: String,
}

/// Every problem found in a catalog file (all of them, not just the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CatalogError(pub Vec<CatalogProblem>);

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the catalog is refused ({} problem(s)):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  {}: {}", p.place, p.problem)?;
        }
        Ok(())
    }
}

impl CatalogError {
    pub(super) fn one(place: impl Into<String>, problem: impl Into<String>) -> Self {
        CatalogError(vec![CatalogProblem {
            place: place.into(),
            problem: problem.into(),
        }])
    }
}

/// Collects problems while building the checked catalog.
#[derive(Default)]
pub(super) struct Checker {
    problems: Vec<CatalogProblem>,
}

impl Checker {
    fn fail(&mut self, place: impl Into<String>, problem: impl Into<String>) {
        self.problems.push(CatalogProblem {
            place: place.into(),
            problem: problem.into(),
        });
    }

    /// A non-negative amount written as a string ("0.90"): a TOML float would already
    /// have lost exactness, so money is never read from one.
    fn money(&mut self, place: &str, text: &str) -> Decimal {
        match text.trim().parse::<Decimal>() {
            Ok(d) if d.is_sign_negative() && !d.is_zero() => {
                self.fail(place, format!("must not be negative, got {text}"));
                Decimal::ZERO
            }
            Ok(d) if d.scale() > 6 => {
                self.fail(place, format!("has more than 6 decimals: {text}"));
                Decimal::ZERO
            }
            Ok(d) => d,
            Err(_) => {
                self.fail(place, format!("is not a decimal amount: {text:?}"));
                Decimal::ZERO
            }
        }
    }

    fn rate(&mut self, place: &str, text: &str) -> Decimal {
        let d = self.money(place, text);
        if d > Decimal::ONE {
            self.fail(
                place,
                format!("is a share and must be between 0 and 1, got {text}"),
            );
        }
        d
    }

    fn service(&mut self, place: &str, text: &str) -> Option<RecordType> {
        let s = RecordType::parse(text);
        if s.is_none() {
            self.fail(
                place,
                format!("unknown service {text:?} (voice, sms or data)"),
            );
        }
        s
    }

    pub(super) fn check(mut self, raw: RawCatalog) -> Result<Catalog, CatalogError> {
        let operator = self.operator(&raw.operator);
        let discounts = Discounts {
            student: self.rate("discounts.student", &raw.discounts.student),
            loyalty: self.rate("discounts.loyalty", &raw.discounts.loyalty),
            loyalty_after_months: raw.discounts.loyalty_after_months,
        };
        let (bands, week) = self.bands(&raw.bands);
        let zones = self.zones(&raw.zones, &operator.home_country);
        let (regions, cells) = self.reference(&raw.regions, &raw.cells);
        let plans = self.plans(&raw.plans, &bands, &zones.0);
        if raw.label.trim().is_empty() {
            self.fail("label", "must not be empty");
        }
        if !self.problems.is_empty() {
            return Err(CatalogError(self.problems));
        }
        let (zones, international, roaming) = zones;
        let find = |kind: ZoneKind, rest: bool| {
            zones.iter().enumerate().find_map(|(i, (z, r))| {
                (z.kind == kind && (kind == ZoneKind::Domestic || *r == rest)).then_some(i)
            })
        };
        let (Some(domestic), Some(international_rest), Some(roaming_rest)) = (
            find(ZoneKind::Domestic, false),
            find(ZoneKind::International, true),
            find(ZoneKind::Roaming, true),
        ) else {
            unreachable!("zones() reports a missing domestic or rest-of-world zone");
        };
        let run = runs(&week);
        Ok(Catalog {
            label: raw.label,
            operator,
            discounts,
            bands,
            week,
            run,
            zones: zones.into_iter().map(|(z, _)| z).collect(),
            domestic,
            international,
            international_rest,
            roaming,
            roaming_rest,
            regions,
            cells,
            plans,
        })
    }

    fn operator(&mut self, o: &RawOperator) -> Operator {
        let timezone = o.timezone.parse::<Tz>().unwrap_or_else(|_| {
            self.fail(
                "operator.timezone",
                format!("unknown IANA time zone {:?}", o.timezone),
            );
            Tz::UTC
        });
        if !(o.currency.len() == 3 && o.currency.bytes().all(|b| b.is_ascii_uppercase())) {
            self.fail(
                "operator.currency",
                format!("must be an ISO 4217 code like MAD, got {:?}", o.currency),
            );
        }
        if !is_country(&o.home_country) {
            self.fail(
                "operator.home_country",
                format!(
                    "must be an ISO 3166 alpha-2 code like MA, got {:?}",
                    o.home_country
                ),
            );
        }
        Operator {
            name: o.name.clone(),
            currency: o.currency.clone(),
            timezone,
            home_country: o.home_country.clone(),
            vat_rate: self.rate("operator.vat_rate", &o.vat_rate),
            regulatory_fee: self.money("operator.regulatory_fee", &o.regulatory_fee),
        }
    }

    /// Band names and the band of every minute of the week; overlaps and gaps are named.
    fn bands(&mut self, raw: &[RawBand]) -> (Vec<String>, Vec<u8>) {
        const UNSET: u8 = u8::MAX;
        let mut names: Vec<String> = Vec::new();
        let mut week = vec![UNSET; MINUTES_PER_WEEK];
        for (i, b) in raw.iter().enumerate() {
            let place = format!("bands[{i}] ({})", b.name);
            if !is_word(&b.name) {
                self.fail(&place, "a band name is a plain word: a-z, 0-9, - or _");
                continue;
            }
            let idx = match names.iter().position(|n| n == &b.name) {
                Some(idx) => idx,
                None => {
                    names.push(b.name.clone());
                    names.len() - 1
                }
            };
            if idx >= UNSET as usize {
                self.fail(&place, "too many bands (at most 254)");
                continue;
            }
            let (from, to) = match (clock_minute(&b.from), clock_minute(&b.to)) {
                (Some(f), Some(t)) if f < t => (f, t),
                (Some(_), Some(_)) => {
                    self.fail(
                        &place,
                        format!("from {} must be before to {} (split a band that crosses midnight in two)", b.from, b.to),
                    );
                    continue;
                }
                _ => {
                    self.fail(
                        &place,
                        format!(
                            "from/to must be HH:MM (00:00 to 24:00), got {:?}–{:?}",
                            b.from, b.to
                        ),
                    );
                    continue;
                }
            };
            if b.days.is_empty() {
                self.fail(&place, "lists no days");
            }
            for day in &b.days {
                let Some(weekday) = parse_day(day) else {
                    self.fail(
                        &place,
                        format!("unknown day {day:?} (mon, tue, wed, thu, fri, sat, sun)"),
                    );
                    continue;
                };
                let base = weekday.num_days_from_monday() as usize * 1440;
                let mut overlap: Option<(usize, usize, u8)> = None;
                for m in from..to {
                    let cell = &mut week[base + m];
                    if *cell != UNSET && *cell != idx as u8 {
                        overlap = Some(match overlap {
                            Some((s, _, other)) => (s, m + 1, other),
                            None => (m, m + 1, *cell),
                        });
                    } else if *cell == idx as u8 {
                        overlap = Some(match overlap {
                            Some((s, _, other)) => (s, m + 1, other),
                            None => (m, m + 1, idx as u8),
                        });
                    }
                    *cell = idx as u8;
                }
                if let Some((s, e, other)) = overlap {
                    self.fail(
                        &place,
                        format!(
                            "overlaps band {:?} on {day} {}–{}",
                            names[other as usize],
                            show_minute(s),
                            show_minute(e)
                        ),
                    );
                }
            }
        }
        if raw.is_empty() {
            self.fail("bands", "at least one band is needed");
        } else if let Some(first) = week.iter().position(|b| *b == UNSET) {
            let end = week[first..]
                .iter()
                .position(|b| *b != UNSET)
                .map_or(MINUTES_PER_WEEK, |n| first + n);
            let day = DAYS[first / 1440];
            let end_text = if end / 1440 == first / 1440 {
                show_minute(end % 1440)
            } else {
                "24:00".to_string()
            };
            self.fail(
                "bands",
                format!(
                    "no band covers {day} {}–{end_text}: every minute of the week needs exactly one band",
                    show_minute(first % 1440)
                ),
            );
        }
        (names, week)
    }

    #[allow(clippy::type_complexity)]
    fn zones(
        &mut self,
        raw: &[RawZone],
        home: &str,
    ) -> (
        Vec<(Zone, bool)>,
        HashMap<String, usize>,
        HashMap<String, usize>,
    ) {
        let mut zones: Vec<(Zone, bool)> = Vec::new();
        let mut names = HashSet::new();
        let mut international = HashMap::new();
        let mut roaming = HashMap::new();
        let mut rest = HashMap::new();
        for (i, z) in raw.iter().enumerate() {
            let place = format!("zones[{i}] ({})", z.name);
            if !is_word(&z.name) {
                self.fail(&place, "a zone name is a plain word: a-z, 0-9, - or _");
            }
            if !names.insert(z.name.clone()) {
                self.fail(&place, "a zone of this name is already defined");
            }
            let Some(kind) = ZoneKind::parse(&z.kind) else {
                self.fail(
                    &place,
                    format!(
                        "unknown kind {:?} (domestic, international or roaming)",
                        z.kind
                    ),
                );
                continue;
            };
            let idx = zones.len();
            match kind {
                ZoneKind::Domestic => {
                    if !z.countries.is_empty() || z.rest_of_world {
                        self.fail(
                            &place,
                            "a domestic zone takes no countries and no rest_of_world",
                        );
                    }
                    if rest.insert(ZoneKind::Domestic, z.name.clone()).is_some() {
                        self.fail(&place, "only one domestic zone is allowed");
                    }
                }
                ZoneKind::International | ZoneKind::Roaming => {
                    let map = if kind == ZoneKind::International {
                        &mut international
                    } else {
                        &mut roaming
                    };
                    if z.rest_of_world {
                        if !z.countries.is_empty() {
                            self.fail(&place, "a rest_of_world zone lists no countries");
                        }
                        if let Some(other) = rest.insert(kind, z.name.clone()) {
                            self.fail(
                                &place,
                                format!(
                                    "zone {other:?} is already the rest_of_world zone of this kind"
                                ),
                            );
                        }
                    } else if z.countries.is_empty() {
                        self.fail(&place, "lists no countries (or set rest_of_world = true)");
                    }
                    for c in &z.countries {
                        if !is_country(c) {
                            self.fail(&place, format!("{c:?} is not an ISO 3166 alpha-2 code"));
                        } else if c == home {
                            self.fail(&place, format!("{c} is the operator's home country"));
                        } else if let Some(other) = map.insert(c.clone(), idx) {
                            let other: &Zone = &zones[other].0;
                            self.fail(&place, format!("{c} is already in zone {:?}", other.name));
                        }
                    }
                }
            }
            zones.push((
                Zone {
                    name: z.name.clone(),
                    kind,
                },
                z.rest_of_world,
            ));
        }
        for (kind, what) in [
            (ZoneKind::Domestic, "a domestic zone"),
            (
                ZoneKind::International,
                "an international zone with rest_of_world = true",
            ),
            (
                ZoneKind::Roaming,
                "a roaming zone with rest_of_world = true",
            ),
        ] {
            if !rest.contains_key(&kind) {
                self.fail(
                    "zones",
                    format!("{what} is needed, so that every event has a zone"),
                );
            }
        }
        (zones, international, roaming)
    }

    fn reference(
        &mut self,
        raw_regions: &[RawRegion],
        raw_cells: &BTreeMap<String, String>,
    ) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let mut regions = BTreeMap::new();
        let mut seen = HashSet::new();
        for (i, r) in raw_regions.iter().enumerate() {
            let place = format!("regions[{i}] ({})", r.name);
            if !seen.insert(r.name.clone()) {
                self.fail(&place, "a region of this name is already defined");
            }
            for city in &r.cities {
                if let Some(other) = regions.insert(city.clone(), r.name.clone()) {
                    self.fail(
                        &place,
                        format!("city {city:?} is already in region {other:?}"),
                    );
                }
            }
        }
        let mut cells = BTreeMap::new();
        for (prefix, city) in raw_cells {
            if !regions.contains_key(city) {
                self.fail(
                    format!("cells.{prefix}"),
                    format!("city {city:?} is in no region"),
                );
            }
            cells.insert(prefix.to_ascii_uppercase(), city.clone());
        }
        (regions, cells)
    }

    fn plans(
        &mut self,
        raw: &[RawPlan],
        bands: &[String],
        zones: &[(Zone, bool)],
    ) -> BTreeMap<String, Plan> {
        let zone_index: HashMap<&str, usize> = zones
            .iter()
            .enumerate()
            .map(|(i, (z, _))| (z.name.as_str(), i))
            .collect();
        let mut plans = BTreeMap::new();
        if raw.is_empty() {
            self.fail("plans", "at least one plan is needed");
        }
        for p in raw {
            let place = format!("plans[{}]", p.code);
            if !is_word(&p.code) {
                self.fail(&place, "a plan code is a plain word: a-z, 0-9, - or _");
            }
            if plans.contains_key(&p.code) {
                self.fail(&place, "a plan with this code is already defined");
            }
            let monthly_fee = self.money(&format!("{place}.monthly_fee"), &p.monthly_fee);
            let mut tariffs: Vec<Option<Tariff>> = vec![None; SERVICES.len() * zones.len()];
            for t in &p.tariffs {
                let tplace = format!("{place}.tariffs[{}/{}]", t.service, t.zone);
                let Some(tariff) = self.tariff(&tplace, &p.code, t, bands, zones, &zone_index)
                else {
                    continue;
                };
                let slot = &mut tariffs[service_index(tariff.service) * zones.len() + tariff.zone];
                if slot.is_some() {
                    self.fail(
                        &tplace,
                        "this service and zone are already priced in this plan",
                    );
                }
                *slot = Some(tariff);
            }
            for service in SERVICES {
                for (zi, (zone, _)) in zones.iter().enumerate() {
                    let applies =
                        service != RecordType::Data || zone.kind != ZoneKind::International;
                    if applies && tariffs[service_index(service) * zones.len() + zi].is_none() {
                        self.fail(
                            &place,
                            format!("no price for {} in zone {:?}", service.as_str(), zone.name),
                        );
                    }
                }
            }
            let mut allowances = Vec::new();
            for (i, a) in p.allowances.iter().enumerate() {
                let aplace = format!("{place}.allowances[{i}]");
                let Some(service) = self.service(&aplace, &a.service) else {
                    continue;
                };
                if a.units <= 0 {
                    self.fail(&aplace, format!("units must be positive, got {}", a.units));
                }
                let mut zs = Vec::new();
                for z in &a.zones {
                    match zone_index.get(z.as_str()) {
                        Some(i) => zs.push(*i),
                        None => self.fail(&aplace, format!("unknown zone {z:?}")),
                    }
                }
                if zs.is_empty() {
                    self.fail(&aplace, "covers no zone");
                }
                let units = match service {
                    RecordType::Voice => a.units * 60,
                    RecordType::Sms => a.units,
                    RecordType::Data => a.units * 1024,
                };
                allowances.push(Allowance {
                    service,
                    zones: zs,
                    units,
                });
            }
            plans.insert(
                p.code.clone(),
                Plan {
                    code: p.code.clone(),
                    name: p.name.clone(),
                    monthly_fee,
                    allowances,
                    tariffs,
                },
            );
        }
        plans
    }

    fn tariff(
        &mut self,
        place: &str,
        plan: &str,
        t: &RawTariff,
        bands: &[String],
        zones: &[(Zone, bool)],
        zone_index: &HashMap<&str, usize>,
    ) -> Option<Tariff> {
        let service = self.service(place, &t.service);
        let zone = zone_index.get(t.zone.as_str()).copied();
        if zone.is_none() {
            self.fail(place, format!("unknown zone {:?}", t.zone));
        }
        let (service, zone) = (service?, zone?);
        if service == RecordType::Data && zones[zone].0.kind == ZoneKind::International {
            self.fail(
                place,
                "data has no international zone (it is priced domestic or roaming)",
            );
        }
        let mut prices = vec![Decimal::ZERO; bands.len()];
        for (i, band) in bands.iter().enumerate() {
            match t.prices.get(band) {
                Some(p) => prices[i] = self.money(&format!("{place}.prices.{band}"), p),
                None => self.fail(place, format!("no price for band {band:?}")),
            }
        }
        for band in t.prices.keys() {
            if !bands.contains(band) {
                self.fail(format!("{place}.prices.{band}"), "unknown band");
            }
        }
        let charging = match (service, &t.charging) {
            (RecordType::Voice, Some(c)) => Charging::parse(c).or_else(|| {
                self.fail(
                    format!("{place}.charging"),
                    format!(
                        "must look like 60/1 (first seconds / step seconds, 1 to 3600), got {c:?}"
                    ),
                );
                None
            }),
            (RecordType::Voice, None) => {
                self.fail(place, "a voice tariff needs charging, e.g. \"60/1\"");
                None
            }
            (_, Some(_)) => {
                self.fail(
                    format!("{place}.charging"),
                    "only voice tariffs take charging",
                );
                None
            }
            (_, None) => None,
        };
        let block_kb = match (service, t.block_kb) {
            (RecordType::Data, Some(b)) if b >= 1 => b,
            (RecordType::Data, Some(b)) => {
                self.fail(
                    format!("{place}.block_kb"),
                    format!("must be at least 1, got {b}"),
                );
                1
            }
            (_, Some(_)) => {
                self.fail(
                    format!("{place}.block_kb"),
                    "only data tariffs take block_kb",
                );
                1
            }
            (_, None) => 1,
        };
        let fee = |c: &mut Self, name: &str, v: &Option<String>| {
            v.as_deref()
                .map_or(Decimal::ZERO, |v| c.money(&format!("{place}.{name}"), v))
        };
        Some(Tariff {
            id: format!("{plan}.{}.{}", service.as_str(), zones[zone].0.name),
            service,
            zone,
            prices,
            wholesale: self.money(&format!("{place}.wholesale"), &t.wholesale),
            charging: charging.or((service == RecordType::Voice).then_some(Charging {
                first: 60,
                step: 60,
            })),
            block_kb,
            connection_fee: fee(self, "connection_fee", &t.connection_fee),
            minimum_charge: fee(self, "minimum_charge", &t.minimum_charge),
        })
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_day(s: &str) -> Option<Weekday> {
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(s))
        .map(|i| Weekday::try_from(i as u8).expect("0..7 is a weekday"))
}

/// "HH:MM" → minute of the day; "24:00" is the end of the day.
fn clock_minute(s: &str) -> Option<usize> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (usize, usize) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn show_minute(m: usize) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// Names stored in SQL array literals and tariff ids stay plain words.
fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn is_country(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// Minutes until the band changes, from each minute of the (cyclic) week.
fn runs(week: &[u8]) -> Vec<u32> {
    let n = week.len();
    let mut run = vec![0u32; n];
    if week.iter().all(|b| *b == week[0]) {
        return vec![n as u32; n];
    }
    // Walk backwards twice around the cycle so runs that wrap past Sunday 24:00 are right.
    let mut next = 0u32;
    for step in 0..2 * n {
        let m = (2 * n - 1 - step) % n;
        let after = (m + 1) % n;
        next = if week[after] == week[m] { next + 1 } else { 1 };
        run[m] = next;
    }
    run
}

#[cfg(test)]
mod tests {
    use super::super::tests::DEFAULT;
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        Catalog::parse(text)
            .unwrap_err()
            .0
            .into_iter()
            .map(|p| format!("{}: {}", p.place, p.problem))
            .collect()
    }

    #[test]
    fn overlapping_bands_are_refused_with_the_day_and_time() {
        let text = DEFAULT.replacen("from = \"08:00\"", "from = \"07:00\"", 1);
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|p| p == "bands[1] (offpeak): overlaps band \"peak\" on mon 07:00–08:00"),
            "{p:?}"
        );
    }

    #[test]
    fn a_gap_in_the_week_is_refused_with_the_day_and_time() {
        let text = DEFAULT.replacen("from = \"08:00\"", "from = \"09:00\"", 1);
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|p| p.contains("no band covers mon 08:00–09:00")),
            "{p:?}"
        );
    }

    #[test]
    fn a_tariff_without_a_band_price_is_refused_naming_the_tariff() {
        let text = DEFAULT.replacen(", weekend = \"0.40\"", "", 1);
        let p = problems(&text);
        assert!(
            p.iter().any(|p| p.contains("tariffs[voice/domestic]")
                && p.contains("no price for band \"weekend\"")),
            "{p:?}"
        );
    }

    #[test]
    fn a_negative_price_is_refused_naming_the_place() {
        let text = DEFAULT.replacen("peak = \"0.90\"", "peak = \"-0.90\"", 1);
        let p = problems(&text);
        assert!(
            p.iter().any(|p| p.contains(
                "plans[basic].tariffs[voice/domestic].prices.peak: must not be negative"
            )),
            "{p:?}"
        );
    }

    #[test]
    fn an_unknown_zone_is_refused() {
        let text = DEFAULT.replacen("zone = \"intl-europe\"", "zone = \"intl-mars\"", 1);
        let p = problems(&text);
        assert!(
            p.iter().any(|p| p.contains("unknown zone \"intl-mars\"")),
            "{p:?}"
        );
        // ... and its service is then unpriced in the zone it should have covered.
        assert!(
            p.iter()
                .any(|p| p.contains("no price for voice in zone \"intl-europe\"")),
            "{p:?}"
        );
    }

    #[test]
    fn a_float_price_is_refused_because_money_is_never_a_float() {
        let text = DEFAULT.replacen("peak = \"0.90\"", "peak = 0.90", 1);
        let p = problems(&text);
        assert!(p[0].starts_with("file: "), "{p:?}");
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let text = DEFAULT.replacen("[operator]", "[operator]\nvat = \"0.2\"", 1);
        assert!(problems(&text)[0].contains("unknown field `vat`"));
    }

    #[test]
    fn a_country_in_two_zones_is_refused() {
        let text = DEFAULT.replacen("countries = [\"DZ\"", "countries = [\"FR\", \"DZ\"", 1);
        let p = problems(&text);
        assert!(
            p.iter().any(|p| p.contains("FR is already in zone")),
            "{p:?}"
        );
    }
}
