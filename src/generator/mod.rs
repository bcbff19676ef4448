//! The synthetic CDR model behind `cdrflow generate`: a seeded stream of voice, SMS and
//! data records in the shapes of DESIGN.md §3, over a pool of Moroccan subscribers, with
//! a controlled mix of anomalies. Every record knows the outcome cdrflow must give it,
//! so a run reconciles count for count against `cdrflow stats`.
//!
//! Pure: no I/O. The CLI sends what this yields to Kafka or a file. It lives beside
//! `domain` rather than in it because it draws from `rand` and `fake`, which the domain
//! does not import: nothing cdrflow does to a record depends on them.
//!
//! - this file: the anomaly mix and the record stream ([`Generator`]);
//! - `customers`: the subscriber pool a seed gives;
//! - `report`: what a run sent and what cdrflow must make of it.

mod customers;
mod report;

pub use customers::{customer_pool, customer_pool_on, Customer, DEFAULT_PLANS};
pub use report::{ExpectedOutcomes, GeneratorReport, PartitionDelivery};

use crate::domain::cells;
use crate::domain::record::RecordType;
use crate::domain::reject::RejectReason;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};

/// Share of records carrying each anomaly (0.0–1.0). Probabilities, not money.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyRates {
    pub missing_field: f64,
    pub corrupted_value: f64,
    pub unknown_type: f64,
    pub duplicate: f64,
    pub out_of_order: f64,
    pub malformed_number: f64,
    pub bad_timestamp: f64,
    pub non_json: f64,
    pub unknown_subscriber: f64,
}

impl Default for AnomalyRates {
    fn default() -> Self {
        AnomalyRates {
            missing_field: 0.05,
            corrupted_value: 0.03,
            unknown_type: 0.01,
            duplicate: 0.02,
            out_of_order: 0.10,
            malformed_number: 0.005,
            bad_timestamp: 0.005,
            non_json: 0.003,
            unknown_subscriber: 0.005,
        }
    }
}

impl AnomalyRates {
    pub fn validate(&self) -> Result<(), String> {
        let all = [
            ("missing-field", self.missing_field),
            ("corrupted-value", self.corrupted_value),
            ("unknown-type", self.unknown_type),
            ("duplicate", self.duplicate),
            ("out-of-order", self.out_of_order),
            ("malformed-number", self.malformed_number),
            ("bad-timestamp", self.bad_timestamp),
            ("non-json", self.non_json),
            ("unknown-subscriber", self.unknown_subscriber),
        ];
        for (name, rate) in all {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("--{name}-rate must be between 0 and 1, got {rate}"));
            }
        }
        let sum: f64 = all.iter().map(|(_, r)| r).sum();
        if sum > 1.0 {
            return Err(format!("the anomaly rates add up to {sum:.3}, more than 1"));
        }
        Ok(())
    }
}

/// The anomaly a record was given on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anomaly {
    MissingField,
    CorruptedValue,
    UnknownType,
    Duplicate,
    OutOfOrder,
    MalformedNumber,
    UnparseableTimestamp,
    FutureTimestamp,
    NonJson,
    UnknownSubscriber,
}

impl Anomaly {
    pub fn as_str(self) -> &'static str {
        match self {
            Anomaly::MissingField => "missing_field",
            Anomaly::CorruptedValue => "corrupted_value",
            Anomaly::UnknownType => "unknown_type",
            Anomaly::Duplicate => "duplicate",
            Anomaly::OutOfOrder => "out_of_order",
            Anomaly::MalformedNumber => "malformed_number",
            Anomaly::UnparseableTimestamp => "unparseable_timestamp",
            Anomaly::FutureTimestamp => "future_timestamp",
            Anomaly::NonJson => "non_json",
            Anomaly::UnknownSubscriber => "unknown_subscriber",
        }
    }
}

/// What cdrflow must do with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Accepted,
    Duplicate,
    Suspense,
    Rejected(RejectReason),
}

#[derive(Debug, Clone)]
pub struct GeneratedRecord {
    /// Kafka key: the subscriber's E.164 number, or the raw text when it has none.
    pub key: String,
    pub payload: Vec<u8>,
    /// `None` for unknown types and non-JSON payloads.
    pub record_type: Option<RecordType>,
    pub anomaly: Option<Anomaly>,
    pub expected: Expected,
}

#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    pub seed: u64,
    pub count: u64,
    pub customers: usize,
    /// Event times run from `start` over `span`, in order but for the out-of-order share.
    pub start: DateTime<Utc>,
    pub span: Duration,
    /// The operator's zone; most timestamps are written as its local wall-clock time.
    pub timezone: Tz,
    /// Future-timestamp anomalies are placed this far (at least 30 days) after `now`.
    pub now: DateTime<Utc>,
    pub rates: AnomalyRates,
}

const CELL_SECTORS: u32 = 40;
const ROAMING: &[&str] = &["FR", "ES", "IT", "BE", "AE", "SA", "TR"];
/// Recently accepted records a duplicate may repeat.
const RECENT: usize = 1024;

pub struct Generator {
    cfg: GeneratorConfig,
    rng: StdRng,
    pool: Vec<Customer>,
    cities: Vec<&'static str>,
    produced: u64,
    recent: VecDeque<(String, Vec<u8>)>,
    /// (subscriber, type, unix second) already used, so two valid records never have the
    /// same content by chance and are never mistaken for duplicates.
    used: HashSet<(usize, u8, i64)>,
}

impl Generator {
    pub fn new(cfg: GeneratorConfig) -> Result<Self, String> {
        cfg.rates.validate()?;
        if cfg.customers == 0 {
            return Err("--customers must be at least 1".into());
        }
        if cfg.start + cfg.span > cfg.now {
            return Err(format!(
                "the traffic window {} .. {} must lie in the past, or valid records would be refused as future",
                cfg.start.to_rfc3339(),
                (cfg.start + cfg.span).to_rfc3339()
            ));
        }
        Ok(Generator {
            rng: StdRng::seed_from_u64(cfg.seed),
            pool: customer_pool(cfg.seed, cfg.customers),
            cities: cells::city_keys().collect(),
            produced: 0,
            recent: VecDeque::with_capacity(RECENT),
            used: HashSet::new(),
            cfg,
        })
    }

    pub fn customers(&self) -> &[Customer] {
        &self.pool
    }

    fn draw_anomaly(&mut self) -> Option<Anomaly> {
        let r = &self.cfg.rates;
        let table = [
            (Anomaly::MissingField, r.missing_field),
            (Anomaly::CorruptedValue, r.corrupted_value),
            (Anomaly::UnknownType, r.unknown_type),
            (Anomaly::Duplicate, r.duplicate),
            (Anomaly::OutOfOrder, r.out_of_order),
            (Anomaly::MalformedNumber, r.malformed_number),
            (Anomaly::UnparseableTimestamp, r.bad_timestamp / 2.0),
            (Anomaly::FutureTimestamp, r.bad_timestamp / 2.0),
            (Anomaly::NonJson, r.non_json),
            (Anomaly::UnknownSubscriber, r.unknown_subscriber),
        ];
        let mut u: f64 = self.rng.random();
        for (a, p) in table {
            if u < p {
                return Some(a);
            }
            u -= p;
        }
        None
    }

    fn national_form(&mut self, e164: &str) -> String {
        // The same subscriber shows up in the three forms switches write.
        match self.rng.random_range(0..10) {
            0..=5 => e164.trim_start_matches('+').to_string(),
            6..=7 => e164.to_string(),
            _ => format!("0{}", &e164[4..]),
        }
    }

    fn peer(&mut self) -> String {
        match self.rng.random_range(0..10) {
            0..=7 => {
                let i = self.rng.random_range(0..self.pool.len());
                let e164 = self.pool[i].msisdn.clone();
                self.national_form(&e164)
            }
            8 => format!("21270{:07}", self.rng.random_range(0..10_000_000)),
            _ => {
                let n = self.rng.random_range(0..10_000_000u64);
                match self.rng.random_range(0..5) {
                    0 => format!("+336{:08}", n),
                    1 => format!("+346{:08}", n),
                    2 => format!("+39347{:07}", n),
                    3 => format!("+447400{:06}", n % 1_000_000),
                    _ => format!(
                        "+9715{}{:07}",
                        pick(&mut self.rng, &['0', '2', '5', '6']),
                        n
                    ),
                }
            }
        }
    }

    fn timestamp_text(&mut self, at: DateTime<Utc>) -> String {
        if self.rng.random_range(0..10) < 7 {
            at.with_timezone(&self.cfg.timezone)
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string()
        } else {
            at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
        }
    }

    fn valid_record(
        &mut self,
        subscriber_idx: Option<usize>,
        at: DateTime<Utc>,
    ) -> (RecordType, String, Value) {
        let record_type = match self.rng.random_range(0..10) {
            0..=4 => RecordType::Voice,
            5..=7 => RecordType::Sms,
            _ => RecordType::Data,
        };
        let (key, subscriber) = match subscriber_idx {
            Some(i) => {
                let e164 = self.pool[i].msisdn.clone();
                (e164.clone(), self.national_form(&e164))
            }
            None => {
                // Outside the pool: a valid Moroccan number no customer has (pool numbers
                // all start +2126).
                let e164 = format!(
                    "+2127{}{:07}",
                    pick(&mut self.rng, &['0', '1', '6', '7']),
                    self.rng.random_range(0..10_000_000)
                );
                (e164.clone(), e164.trim_start_matches('+').to_string())
            }
        };
        let city = self.cities[self.rng.random_range(0..self.cities.len())];
        let cell = format!("{city}_{}", self.rng.random_range(1..=CELL_SECTORS));
        let technology = ["2G", "3G", "4G", "4G", "4G", "5G", "5G"][self.rng.random_range(0..7)];
        let ts = self.timestamp_text(at);
        let mut v = match record_type {
            RecordType::Voice => json!({
                "record_type": "voice", "timestamp": ts, "caller_id": subscriber, "callee_id": self.peer(),
                "duration_sec": self.rng.random_range(1..=1800), "cell_id": cell, "technology": technology,
            }),
            RecordType::Sms => json!({
                "record_type": "sms", "timestamp": ts, "sender_id": subscriber, "receiver_id": self.peer(),
                "cell_id": cell, "technology": technology,
            }),
            RecordType::Data => {
                // Hundredths of MB, skewed like real sessions: most are small, a few large.
                let hundredths = match self.rng.random_range(0..100) {
                    0..70 => self.rng.random_range(1..=5_000),
                    70..95 => self.rng.random_range(5_000..=50_000),
                    _ => self.rng.random_range(50_000..=200_000),
                };
                let mb = rust_decimal::Decimal::new(hundredths, 2);
                json!({
                    "record_type": "data", "timestamp": ts, "user_id": subscriber,
                    "data_volume_mb": serde_json::from_str::<serde_json::Number>(&mb.to_string()).expect("a decimal is a JSON number"),
                    "session_duration_sec": self.rng.random_range(1..=7200), "cell_id": cell, "technology": technology,
                })
            }
        };
        if self.rng.random_range(0..100) < 3 {
            v["roaming_country"] = json!(ROAMING[self.rng.random_range(0..ROAMING.len())]);
        }
        (record_type, key, v)
    }

    /// An instant for subscriber `idx` that no earlier valid record of the same type used.
    fn unique_instant(
        &mut self,
        idx: usize,
        record_type: RecordType,
        mut at: DateTime<Utc>,
    ) -> DateTime<Utc> {
        while !self.used.insert((idx, record_type as u8, at.timestamp())) {
            at += Duration::seconds(1);
        }
        at
    }
}

fn pick<T: Copy>(rng: &mut StdRng, from: &[T]) -> T {
    from[rng.random_range(0..from.len())]
}

impl Iterator for Generator {
    type Item = GeneratedRecord;

    fn next(&mut self) -> Option<GeneratedRecord> {
        if self.produced >= self.cfg.count {
            return None;
        }
        let i = self.produced;
        self.produced += 1;
        let clock = self.cfg.start
            + Duration::milliseconds(
                (self.cfg.span.num_milliseconds() as f64 * i as f64 / self.cfg.count as f64) as i64,
            );
        let mut anomaly = self.draw_anomaly();
        if anomaly == Some(Anomaly::Duplicate) {
            if self.recent.is_empty() {
                anomaly = None;
            } else {
                let pick = self.rng.random_range(0..self.recent.len());
                let (key, payload) = self.recent[pick].clone();
                let record_type = serde_json::from_slice::<Value>(&payload)
                    .ok()
                    .and_then(|v| v["record_type"].as_str().and_then(RecordType::parse));
                return Some(GeneratedRecord {
                    key,
                    payload,
                    record_type,
                    anomaly,
                    expected: Expected::Duplicate,
                });
            }
        }
        if anomaly == Some(Anomaly::NonJson) {
            let junk: &[&[u8]] = &[
                b"\x00\x01\x02 binary junk \xff\xfe",
                b"{\"record_type\":\"voice\",\"caller_id\":",
                b"voice;2126;0612;60",
                b"<cdr type=\"sms\"/>",
            ];
            return Some(GeneratedRecord {
                key: "unknown".into(),
                payload: junk[self.rng.random_range(0..junk.len())].to_vec(),
                record_type: None,
                anomaly,
                expected: Expected::Rejected(RejectReason::InvalidJson),
            });
        }

        let subscriber_idx = if anomaly == Some(Anomaly::UnknownSubscriber) {
            None
        } else {
            Some(self.rng.random_range(0..self.pool.len()))
        };
        let mut at = clock;
        if anomaly == Some(Anomaly::OutOfOrder) {
            at -= Duration::minutes(self.rng.random_range(60..=48 * 60));
        }
        let (record_type, key, mut v) = self.valid_record(subscriber_idx, at);
        if let Some(idx) = subscriber_idx {
            let unique = self.unique_instant(idx, record_type, at);
            if unique != at {
                v["timestamp"] = json!(self.timestamp_text(unique));
            }
        }
        let obj = v.as_object_mut().expect("generated records are objects");
        let mut record_type_known = true;
        let expected = match anomaly {
            None | Some(Anomaly::OutOfOrder) => Expected::Accepted,
            Some(Anomaly::UnknownSubscriber) => Expected::Suspense,
            Some(Anomaly::MissingField) => {
                let mut fields: Vec<&str> = record_type.required_fields().to_vec();
                fields.push("record_type");
                let f = pick(&mut self.rng, &fields);
                if self.rng.random_range(0..4) == 0 {
                    obj.insert(f.to_string(), Value::Null);
                } else {
                    obj.remove(f);
                }
                if f == "record_type" {
                    record_type_known = false;
                }
                Expected::Rejected(RejectReason::MissingField)
            }
            Some(Anomaly::CorruptedValue) => {
                let (field, bad) = match (record_type, self.rng.random_range(0..3)) {
                    (RecordType::Voice, 0) => {
                        ("duration_sec", json!(-self.rng.random_range(1..600)))
                    }
                    (RecordType::Voice, 1) => ("duration_sec", json!("abc")),
                    (RecordType::Data, 0) => ("data_volume_mb", json!(-1.5)),
                    (RecordType::Data, 1) => ("data_volume_mb", json!("N/A")),
                    (RecordType::Data, _) => ("session_duration_sec", json!(-30)),
                    _ => ("technology", json!("9G")),
                };
                obj.insert(field.to_string(), bad);
                Expected::Rejected(RejectReason::InvalidValue)
            }
            Some(Anomaly::UnknownType) => {
                obj.insert(
                    "record_type".into(),
                    json!(pick(&mut self.rng, &["ping", "mms", "heartbeat", "USSD"])),
                );
                record_type_known = false;
                Expected::Rejected(RejectReason::UnknownRecordType)
            }
            Some(Anomaly::MalformedNumber) => {
                let bad = pick(&mut self.rng, &["abcde", "12", "+999123", "06-CALL-ME"]);
                let field = match (record_type.peer_field(), self.rng.random_range(0..2)) {
                    (Some(peer), 0) => peer,
                    _ => record_type.subscriber_field(),
                };
                obj.insert(field.to_string(), json!(bad));
                Expected::Rejected(RejectReason::MalformedNumber)
            }
            Some(Anomaly::UnparseableTimestamp) => {
                obj.insert(
                    "timestamp".into(),
                    json!(pick(
                        &mut self.rng,
                        &["not-a-date", "2026-13-45T25:61:00", "31/12/2026 10:00", ""]
                    )),
                );
                Expected::Rejected(RejectReason::InvalidTimestamp)
            }
            Some(Anomaly::FutureTimestamp) => {
                let ahead = self.cfg.now + Duration::days(self.rng.random_range(30..=365));
                obj.insert(
                    "timestamp".into(),
                    json!(ahead.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                );
                Expected::Rejected(RejectReason::FutureTimestamp)
            }
            Some(Anomaly::Duplicate) | Some(Anomaly::NonJson) => unreachable!("handled above"),
        };
        let payload = serde_json::to_vec(&v).expect("JSON values serialize");
        if expected == Expected::Accepted {
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back((key.clone(), payload.clone()));
        }
        Some(GeneratedRecord {
            key,
            payload,
            record_type: record_type_known.then_some(record_type),
            anomaly,
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::msisdn::NumberPlan;
    use crate::domain::normalize::Normalizer;
    use crate::domain::record::Validation;
    use chrono::TimeZone;
    use std::collections::HashMap;

    fn config(seed: u64, count: u64) -> GeneratorConfig {
        GeneratorConfig {
            seed,
            count,
            customers: 200,
            start: Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap(),
            span: Duration::days(30),
            timezone: chrono_tz::Africa::Casablanca,
            now: Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap(),
            rates: AnomalyRates::default(),
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_records() {
        let a: Vec<_> = Generator::new(config(7, 500))
            .unwrap()
            .map(|r| r.payload)
            .collect();
        let b: Vec<_> = Generator::new(config(7, 500))
            .unwrap()
            .map(|r| r.payload)
            .collect();
        let c: Vec<_> = Generator::new(config(8, 500))
            .unwrap()
            .map(|r| r.payload)
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn rates_that_add_up_past_one_are_refused() {
        let mut cfg = config(1, 10);
        cfg.rates.missing_field = 0.99;
        assert!(Generator::new(cfg).is_err());
    }

    /// The generator's promise, checked against the real validation and normalization:
    /// every record gets exactly the outcome the generator expects of it.
    #[test]
    fn every_generated_record_meets_its_expected_outcome() {
        let cfg = config(42, 20_000);
        let now = cfg.now;
        let gen = Generator::new(cfg).unwrap();
        let known: HashSet<String> = gen.customers().iter().map(|c| c.msisdn.clone()).collect();
        let validation = Validation::default();
        let mut normalizer = Normalizer::new(NumberPlan::new("MA").unwrap());
        let mut ids = HashSet::new();
        let mut report = GeneratorReport::default();
        let mut seen_anomalies: HashMap<Anomaly, u64> = HashMap::new();
        for r in gen {
            report.record(&r);
            if let Some(a) = r.anomaly {
                *seen_anomalies.entry(a).or_default() += 1;
            }
            let outcome = match validation
                .validate(&r.payload, now)
                .and_then(|v| normalizer.normalize(v))
            {
                Err(rej) => Expected::Rejected(rej.reason),
                Ok(n) if !ids.insert(n.record_id.clone()) => Expected::Duplicate,
                Ok(n) if !known.contains(n.subscriber.as_str()) => Expected::Suspense,
                Ok(n) => {
                    assert_eq!(
                        r.key,
                        n.subscriber.as_str(),
                        "records are keyed by E.164 subscriber"
                    );
                    Expected::Accepted
                }
            };
            assert_eq!(
                outcome,
                r.expected,
                "{:?}: {}",
                r.anomaly,
                String::from_utf8_lossy(&r.payload)
            );
        }
        assert_eq!(report.sent, 20_000);
        for a in [
            Anomaly::MissingField,
            Anomaly::CorruptedValue,
            Anomaly::UnknownType,
            Anomaly::Duplicate,
            Anomaly::OutOfOrder,
            Anomaly::MalformedNumber,
            Anomaly::UnparseableTimestamp,
            Anomaly::FutureTimestamp,
            Anomaly::NonJson,
            Anomaly::UnknownSubscriber,
        ] {
            assert!(
                seen_anomalies.get(&a).copied().unwrap_or(0) > 0,
                "no {a:?} in 20,000 records"
            );
        }
        let out_of_order = seen_anomalies[&Anomaly::OutOfOrder] as f64 / 20_000.0;
        assert!(
            (0.08..0.12).contains(&out_of_order),
            "out-of-order share {out_of_order}"
        );
    }
}
