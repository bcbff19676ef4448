//! The CDR as it arrives: decoding the JSON payload and checking every field, turning
//! bytes into a [`ValidCdr`] or a [`Rejection`] with its reason.
//!
//! Accepted shapes (docs/design.md, "Input records"):
//! voice `timestamp caller_id callee_id duration_sec cell_id technology`,
//! sms `timestamp sender_id receiver_id cell_id technology`,
//! data `timestamp user_id data_volume_mb session_duration_sec cell_id technology`;
//! optional `record_id`, `roaming_country`; anything else stays in the raw payload.

use super::reject::{shown, RejectReason, Rejection};
use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    Voice,
    Sms,
    Data,
}

impl RecordType {
    pub const ALL: [RecordType; 3] = [RecordType::Voice, RecordType::Sms, RecordType::Data];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Voice => "voice",
            RecordType::Sms => "sms",
            RecordType::Data => "data",
        }
    }

    pub fn parse(s: &str) -> Option<RecordType> {
        RecordType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// The field that names the subscriber who pays for the event.
    pub fn subscriber_field(self) -> &'static str {
        match self {
            RecordType::Voice => "caller_id",
            RecordType::Sms => "sender_id",
            RecordType::Data => "user_id",
        }
    }

    /// The field that names the other party, if the event has one.
    pub fn peer_field(self) -> Option<&'static str> {
        match self {
            RecordType::Voice => Some("callee_id"),
            RecordType::Sms => Some("receiver_id"),
            RecordType::Data => None,
        }
    }

    pub fn required_fields(self) -> &'static [&'static str] {
        match self {
            RecordType::Voice => &[
                "timestamp",
                "caller_id",
                "callee_id",
                "duration_sec",
                "cell_id",
                "technology",
            ],
            RecordType::Sms => &[
                "timestamp",
                "sender_id",
                "receiver_id",
                "cell_id",
                "technology",
            ],
            RecordType::Data => &[
                "timestamp",
                "user_id",
                "data_volume_mb",
                "session_duration_sec",
                "cell_id",
                "technology",
            ],
        }
    }
}

/// Radio access technology, canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Technology {
    #[serde(rename = "2G")]
    G2,
    #[serde(rename = "3G")]
    G3,
    #[serde(rename = "4G")]
    G4,
    #[serde(rename = "5G")]
    G5,
}

impl Technology {
    pub const ALL: [Technology; 4] = [
        Technology::G2,
        Technology::G3,
        Technology::G4,
        Technology::G5,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Technology::G2 => "2G",
            Technology::G3 => "3G",
            Technology::G4 => "4G",
            Technology::G5 => "5G",
        }
    }

    /// Accepts the generation (`4g`) and the usual radio names (`LTE`, `NR`, `UMTS`, `GSM`).
    pub fn parse(s: &str) -> Option<Technology> {
        match s.trim().to_ascii_uppercase().as_str() {
            "2G" | "GSM" | "GPRS" | "EDGE" => Some(Technology::G2),
            "3G" | "UMTS" | "HSPA" | "WCDMA" => Some(Technology::G3),
            "4G" | "LTE" => Some(Technology::G4),
            "5G" | "NR" => Some(Technology::G5),
            _ => None,
        }
    }
}

/// A record whose every field was read and checked; numbers are not yet normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidCdr {
    pub record_type: RecordType,
    pub record_id: Option<String>,
    pub event_time: DateTime<Utc>,
    pub subscriber: String,
    pub peer: Option<String>,
    pub duration_sec: Option<i32>,
    pub volume_bytes: Option<i64>,
    pub session_duration_sec: Option<i32>,
    pub cell_id: String,
    pub technology: Technology,
    pub roaming_country: Option<String>,
}

/// Bytes in a megabyte as volumes are billed (binary megabyte: 1024 × 1024).
pub const BYTES_PER_MB: i64 = 1_048_576;
/// A call or session longer than two days is a corrupt counter, not traffic.
const MAX_DURATION_SEC: i64 = 2 * 86_400;
/// One terabyte in one session is a corrupt counter.
const MAX_VOLUME_MB: i64 = 1_000_000;
const MAX_RECORD_ID_LEN: usize = 128;

/// Validation settings, fixed at start-up.
#[derive(Debug, Clone)]
pub struct Validation {
    pub max_payload_bytes: usize,
    /// How far ahead of `now` a timestamp may be before it is refused.
    pub max_clock_skew: Duration,
    /// How much older than its arrival a record may be before it is refused.
    pub max_event_age: Duration,
    /// The zone in which timestamps without an offset are read.
    pub timezone: Tz,
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            max_payload_bytes: 64 * 1024,
            max_clock_skew: Duration::hours(24),
            max_event_age: Duration::days(90),
            timezone: chrono_tz::Africa::Casablanca,
        }
    }
}

impl Validation {
    /// Decode and check one payload that arrives `now`.
    pub fn validate(&self, payload: &[u8], now: DateTime<Utc>) -> Result<ValidCdr, Rejection> {
        self.validate_arrived(payload, now, now)
    }

    /// Decode and check one payload, checked `now`, that `arrived` on the broker. The age
    /// limit is measured against the arrival, so a record replayed months later gets the
    /// verdict it got then.
    pub fn validate_arrived(
        &self,
        payload: &[u8],
        now: DateTime<Utc>,
        arrived: DateTime<Utc>,
    ) -> Result<ValidCdr, Rejection> {
        let cdr = self.decode(payload, now)?;
        if cdr.event_time < arrived - self.max_event_age {
            return Err(Rejection::new(
                RejectReason::TooOld,
                format!(
                    "{} is {} days before its arrival {}; the limit is {} days",
                    cdr.event_time.to_rfc3339(),
                    (arrived - cdr.event_time).num_days(),
                    arrived.to_rfc3339(),
                    self.max_event_age.num_days()
                ),
            ));
        }
        Ok(cdr)
    }

    fn decode(&self, payload: &[u8], now: DateTime<Utc>) -> Result<ValidCdr, Rejection> {
        if payload.len() > self.max_payload_bytes {
            return Err(Rejection::new(
                RejectReason::PayloadTooLarge,
                format!(
                    "{} bytes, the limit is {}",
                    payload.len(),
                    self.max_payload_bytes
                ),
            ));
        }
        // serde_json refuses nesting deeper than 128 levels, so a hostile payload cannot
        // exhaust the stack; that error lands here as invalid JSON too.
        let value: Value = serde_json::from_slice(payload).map_err(|e| {
            Rejection::new(RejectReason::InvalidJson, format!("not valid JSON: {e}"))
        })?;
        let Value::Object(obj) = value else {
            return Err(Rejection::new(
                RejectReason::NotAnObject,
                format!("expected a JSON object, got {}", kind(&value)),
            ));
        };
        let record_type = match present(&obj, "record_type") {
            None => {
                return Err(Rejection::new(
                    RejectReason::MissingField,
                    "missing field: record_type",
                ))
            }
            Some(Value::String(s)) => RecordType::parse(s).ok_or_else(|| {
                Rejection::new(
                    RejectReason::UnknownRecordType,
                    format!("unknown record_type `{}`", shown(s)),
                )
            })?,
            Some(other) => {
                return Err(Rejection::new(
                    RejectReason::UnknownRecordType,
                    format!("record_type must be a string, got {}", kind(other)),
                ))
            }
        };
        let missing: Vec<&str> = record_type
            .required_fields()
            .iter()
            .copied()
            .filter(|f| present(&obj, f).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(Rejection::new(
                RejectReason::MissingField,
                format!(
                    "missing field{}: {}",
                    if missing.len() > 1 { "s" } else { "" },
                    missing.join(", ")
                ),
            ));
        }

        let event_time = self.timestamp(&obj["timestamp"], now)?;
        let subscriber = number_text(
            &obj[record_type.subscriber_field()],
            record_type.subscriber_field(),
        )?;
        let peer = match record_type.peer_field() {
            Some(f) => Some(number_text(&obj[f], f)?),
            None => None,
        };
        let (duration_sec, volume_bytes, session_duration_sec) = match record_type {
            RecordType::Voice => (
                Some(seconds(&obj["duration_sec"], "duration_sec")?),
                None,
                None,
            ),
            RecordType::Sms => (None, None, None),
            RecordType::Data => (
                None,
                Some(volume_bytes(&obj["data_volume_mb"])?),
                Some(seconds(
                    &obj["session_duration_sec"],
                    "session_duration_sec",
                )?),
            ),
        };
        let cell_id = match &obj["cell_id"] {
            Value::String(s) if !s.trim().is_empty() && s.len() <= 64 && printable(s) => {
                s.trim().to_string()
            }
            other => {
                return Err(invalid(
                    "cell_id",
                    other,
                    "a non-empty printable string of at most 64 characters",
                ))
            }
        };
        let technology = match &obj["technology"] {
            Value::String(s) => Technology::parse(s),
            _ => None,
        }
        .ok_or_else(|| invalid("technology", &obj["technology"], "2G, 3G, 4G or 5G"))?;
        let roaming_country = match present(&obj, "roaming_country") {
            None => None,
            Some(Value::String(s))
                if s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic()) =>
            {
                Some(s.to_ascii_uppercase())
            }
            Some(Value::String(s)) if s.is_empty() => None,
            Some(other) => {
                return Err(invalid(
                    "roaming_country",
                    other,
                    "an ISO 3166 alpha-2 code",
                ))
            }
        };
        let record_id = match present(&obj, "record_id") {
            None => None,
            Some(Value::String(s))
                if !s.trim().is_empty() && s.len() <= MAX_RECORD_ID_LEN && printable(s) =>
            {
                Some(s.trim().to_string())
            }
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                return Err(invalid(
                    "record_id",
                    other,
                    "a non-empty printable string of at most 128 characters",
                ))
            }
        };
        Ok(ValidCdr {
            record_type,
            record_id,
            event_time,
            subscriber,
            peer,
            duration_sec,
            volume_bytes,
            session_duration_sec,
            cell_id,
            technology,
            roaming_country,
        })
    }

    fn timestamp(&self, value: &Value, now: DateTime<Utc>) -> Result<DateTime<Utc>, Rejection> {
        let Value::String(text) = value else {
            return Err(Rejection::new(
                RejectReason::InvalidTimestamp,
                format!("timestamp must be an ISO-8601 string, got {}", kind(value)),
            ));
        };
        let unreadable = || {
            Rejection::new(
                RejectReason::InvalidTimestamp,
                format!("`{}` is not an ISO-8601 timestamp", shown(text)),
            )
        };
        let text = text.trim();
        let at = if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            t.with_timezone(&Utc)
        } else {
            let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
                .ok_or_else(unreadable)?;
            // A local time without offset is the operator's wall clock. In the hour that
            // DST repeats, the earlier instant is taken; in the hour it skips, the record
            // cannot have happened and is refused.
            match self.timezone.from_local_datetime(&naive) {
                LocalResult::Single(t) => t.with_timezone(&Utc),
                LocalResult::Ambiguous(earliest, _) => earliest.with_timezone(&Utc),
                LocalResult::None => {
                    return Err(Rejection::new(
                        RejectReason::InvalidTimestamp,
                        format!(
                            "`{text}` does not exist in {} (skipped by a DST change)",
                            self.timezone
                        ),
                    ))
                }
            }
        };
        if at > now + self.max_clock_skew {
            return Err(Rejection::new(
                RejectReason::FutureTimestamp,
                format!(
                    "{} is more than {} h ahead of now",
                    at.to_rfc3339(),
                    self.max_clock_skew.num_hours()
                ),
            ));
        }
        Ok(at)
    }
}

fn present<'a>(obj: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    obj.get(field).filter(|v| !v.is_null())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Text we store must be printable: no control characters (NUL would make the row fail).
fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

fn invalid(field: &str, got: &Value, expected: &str) -> Rejection {
    let shown = match got {
        Value::String(s) => format!("`{}`", shown(s)),
        other => kind(other).to_string(),
    };
    Rejection::new(
        RejectReason::InvalidValue,
        format!("{field} must be {expected}, got {shown}"),
    )
}

/// A phone number may arrive as a string or as a bare JSON integer.
fn number_text(value: &Value, field: &str) -> Result<String, Rejection> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        other => Err(Rejection::new(
            RejectReason::MalformedNumber,
            format!("{field} must be a phone number, got {}", kind(other)),
        )),
    }
}

/// A JSON number or numeric string, read exactly (no binary floating point).
fn decimal(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    Decimal::from_str(&text)
        .ok()
        .or_else(|| Decimal::from_scientific(&text).ok())
}

/// Whole seconds; a fractional second is rounded up, as switches bill a started second.
fn seconds(value: &Value, field: &str) -> Result<i32, Rejection> {
    let d = decimal(value).ok_or_else(|| invalid(field, value, "a number of seconds"))?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(invalid(field, value, "zero or more seconds"));
    }
    let whole = d.ceil().to_i64().filter(|s| *s <= MAX_DURATION_SEC);
    whole
        .map(|s| s as i32)
        .ok_or_else(|| invalid(field, value, "at most two days in seconds"))
}

/// Megabytes (decimal allowed) to whole bytes, rounding a started byte up.
fn volume_bytes(value: &Value) -> Result<i64, Rejection> {
    let mb =
        decimal(value).ok_or_else(|| invalid("data_volume_mb", value, "a number of megabytes"))?;
    if mb.is_sign_negative() && !mb.is_zero() {
        return Err(invalid("data_volume_mb", value, "zero or more megabytes"));
    }
    if mb > Decimal::from(MAX_VOLUME_MB) {
        return Err(invalid("data_volume_mb", value, "at most 1,000,000 MB"));
    }
    (mb * Decimal::from(BYTES_PER_MB))
        .ceil()
        .to_i64()
        .ok_or_else(|| invalid("data_volume_mb", value, "a number of megabytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
    }

    fn check(v: Value) -> Result<ValidCdr, Rejection> {
        Validation::default().validate(v.to_string().as_bytes(), now())
    }

    fn voice() -> Value {
        json!({"record_type":"voice","timestamp":"2026-10-05T09:30:00","caller_id":"212612345678",
               "callee_id":"+33612345678","duration_sec":125,"cell_id":"CASABLANCA_12","technology":"4G"})
    }

    fn sms() -> Value {
        json!({"record_type":"sms","timestamp":"2026-10-05T09:30:00Z","sender_id":"0612345678",
               "receiver_id":"0698765432","cell_id":"RABAT_3","technology":"3G"})
    }

    fn data() -> Value {
        json!({"record_type":"data","timestamp":"2026-10-05 23:59:59","user_id":"212612345678",
               "data_volume_mb":1.5,"session_duration_sec":600,"cell_id":"FES_1","technology":"5G"})
    }

    fn reason(v: Value) -> RejectReason {
        check(v).unwrap_err().reason
    }

    #[test]
    fn a_complete_voice_record_is_valid() {
        let cdr = check(voice()).unwrap();
        assert_eq!(cdr.record_type, RecordType::Voice);
        assert_eq!(cdr.duration_sec, Some(125));
        assert_eq!(cdr.peer.as_deref(), Some("+33612345678"));
        assert_eq!(cdr.technology, Technology::G4);
    }

    #[test]
    fn a_naive_timestamp_is_read_in_the_operator_time_zone() {
        // Casablanca is UTC+1 outside Ramadan in 2026-10.
        let cdr = check(voice()).unwrap();
        assert_eq!(
            cdr.event_time,
            Utc.with_ymd_and_hms(2026, 10, 5, 8, 30, 0).unwrap()
        );
    }

    #[test]
    fn a_timestamp_with_z_is_utc() {
        assert_eq!(
            check(sms()).unwrap().event_time,
            Utc.with_ymd_and_hms(2026, 10, 5, 9, 30, 0).unwrap()
        );
    }

    #[test]
    fn a_data_volume_in_megabytes_becomes_whole_bytes() {
        let cdr = check(data()).unwrap();
        assert_eq!(cdr.volume_bytes, Some(1_572_864));
        assert_eq!(cdr.session_duration_sec, Some(600));
        assert_eq!(cdr.peer, None);
    }

    #[test]
    fn a_started_byte_is_rounded_up() {
        let mut v = data();
        v["data_volume_mb"] = json!(0.000001);
        assert_eq!(check(v).unwrap().volume_bytes, Some(2));
    }

    #[test]
    fn a_numeric_string_duration_is_accepted() {
        let mut v = voice();
        v["duration_sec"] = json!("42");
        assert_eq!(check(v).unwrap().duration_sec, Some(42));
    }

    #[test]
    fn a_fractional_second_is_rounded_up() {
        let mut v = voice();
        v["duration_sec"] = json!(12.2);
        assert_eq!(check(v).unwrap().duration_sec, Some(13));
    }

    #[test]
    fn a_payload_over_the_limit_is_rejected_before_parsing() {
        let big = vec![b' '; 64 * 1024 + 1];
        let err = Validation::default().validate(&big, now()).unwrap_err();
        assert_eq!(err.reason, RejectReason::PayloadTooLarge);
    }

    #[test]
    fn bytes_that_are_not_json_are_rejected_as_invalid_json() {
        let err = Validation::default()
            .validate(b"\x00\xffgarbage", now())
            .unwrap_err();
        assert_eq!(err.reason, RejectReason::InvalidJson);
    }

    #[test]
    fn deeply_nested_json_is_rejected_without_overflowing_the_stack() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = Validation::default()
            .validate(deep.as_bytes(), now())
            .unwrap_err();
        assert_eq!(err.reason, RejectReason::InvalidJson);
        assert!(err.detail.contains("recursion"), "{}", err.detail);
    }

    #[test]
    fn a_json_array_is_not_an_object() {
        assert_eq!(reason(json!([1, 2])), RejectReason::NotAnObject);
    }

    #[test]
    fn a_missing_record_type_is_a_missing_field() {
        let mut v = voice();
        v.as_object_mut().unwrap().remove("record_type");
        assert_eq!(reason(v), RejectReason::MissingField);
    }

    #[test]
    fn an_unknown_record_type_is_rejected_as_such() {
        let mut v = voice();
        v["record_type"] = json!("ping");
        let err = check(v).unwrap_err();
        assert_eq!(err.reason, RejectReason::UnknownRecordType);
        assert!(err.detail.contains("ping"));
    }

    #[test]
    fn every_required_field_of_every_type_is_checked() {
        for (v, t) in [
            (voice(), RecordType::Voice),
            (sms(), RecordType::Sms),
            (data(), RecordType::Data),
        ] {
            for field in t.required_fields() {
                let mut without = v.clone();
                without.as_object_mut().unwrap().remove(*field);
                let err = check(without).unwrap_err();
                assert_eq!(err.reason, RejectReason::MissingField, "{field}");
                assert!(err.detail.contains(field), "{}", err.detail);
                let mut null = v.clone();
                null[*field] = Value::Null;
                assert_eq!(reason(null), RejectReason::MissingField, "{field} null");
            }
        }
    }

    #[test]
    fn a_negative_duration_is_an_invalid_value() {
        let mut v = voice();
        v["duration_sec"] = json!(-5);
        assert_eq!(reason(v), RejectReason::InvalidValue);
    }

    #[test]
    fn a_non_numeric_duration_is_an_invalid_value() {
        let mut v = voice();
        v["duration_sec"] = json!("abc");
        assert_eq!(reason(v), RejectReason::InvalidValue);
    }

    #[test]
    fn a_negative_or_non_numeric_volume_is_an_invalid_value() {
        for bad in [json!(-1.5), json!("lots"), json!(true)] {
            let mut v = data();
            v["data_volume_mb"] = bad;
            assert_eq!(reason(v), RejectReason::InvalidValue);
        }
    }

    #[test]
    fn an_absurdly_long_call_is_an_invalid_value() {
        let mut v = voice();
        v["duration_sec"] = json!(10_000_000);
        assert_eq!(reason(v), RejectReason::InvalidValue);
    }

    #[test]
    fn an_unknown_technology_is_an_invalid_value() {
        let mut v = voice();
        v["technology"] = json!("6G");
        assert_eq!(reason(v), RejectReason::InvalidValue);
    }

    #[test]
    fn radio_names_map_to_their_generation() {
        assert_eq!(Technology::parse("lte"), Some(Technology::G4));
        assert_eq!(Technology::parse("NR"), Some(Technology::G5));
        assert_eq!(Technology::parse("umts"), Some(Technology::G3));
        assert_eq!(Technology::parse("GSM"), Some(Technology::G2));
    }

    #[test]
    fn an_unparseable_timestamp_is_rejected() {
        let mut v = voice();
        v["timestamp"] = json!("yesterday at noon");
        assert_eq!(reason(v), RejectReason::InvalidTimestamp);
        let mut v = voice();
        v["timestamp"] = json!(1700000000);
        assert_eq!(reason(v), RejectReason::InvalidTimestamp);
    }

    #[test]
    fn a_far_future_timestamp_is_rejected() {
        let mut v = voice();
        v["timestamp"] = json!("2031-01-01T00:00:00Z");
        assert_eq!(reason(v), RejectReason::FutureTimestamp);
    }

    #[test]
    fn a_record_dated_at_the_epoch_after_a_clock_reset_is_too_old() {
        let mut v = voice();
        v["timestamp"] = json!("1970-01-01T00:00:00Z");
        let err = check(v).unwrap_err();
        assert_eq!(err.reason, RejectReason::TooOld);
        assert!(
            err.detail.contains("the limit is 90 days"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn a_record_dated_in_year_one_is_too_old() {
        let mut v = sms();
        v["timestamp"] = json!("0001-01-01T00:00:00Z");
        assert_eq!(reason(v), RejectReason::TooOld);
    }

    #[test]
    fn the_age_limit_is_measured_against_the_arrival_not_the_check() {
        let mut v = voice();
        // 91 days before now(), 89 days before an arrival two days earlier.
        v["timestamp"] = json!("2026-08-02T12:00:00Z");
        let payload = v.to_string();
        let arrived = now() - Duration::days(2);
        assert_eq!(
            Validation::default()
                .validate(payload.as_bytes(), now())
                .unwrap_err()
                .reason,
            RejectReason::TooOld
        );
        assert!(Validation::default()
            .validate_arrived(payload.as_bytes(), now(), arrived)
            .is_ok());
        // A replay weeks later still measures against the first arrival.
        assert!(Validation::default()
            .validate_arrived(payload.as_bytes(), now() + Duration::days(60), arrived)
            .is_ok());
    }

    #[test]
    fn a_late_record_inside_the_age_limit_is_accepted() {
        let mut v = voice();
        v["timestamp"] = json!("2026-08-04T12:00:00Z");
        assert!(check(v).is_ok());
        let strict = Validation {
            max_event_age: Duration::days(30),
            ..Validation::default()
        };
        let mut v = voice();
        v["timestamp"] = json!("2026-09-30T12:00:00Z");
        assert_eq!(
            strict
                .validate(v.to_string().as_bytes(), now())
                .unwrap_err()
                .reason,
            RejectReason::TooOld
        );
    }

    #[test]
    fn a_timestamp_slightly_ahead_within_the_skew_is_accepted() {
        let mut v = voice();
        v["timestamp"] = json!("2026-11-01T13:00:00Z");
        assert!(check(v).is_ok());
    }

    #[test]
    fn an_out_of_order_old_timestamp_is_accepted() {
        let mut v = voice();
        v["timestamp"] = json!("2026-09-01T00:00:00Z");
        assert!(check(v).is_ok());
    }

    #[test]
    fn a_number_given_as_a_json_float_is_malformed() {
        let mut v = voice();
        v["caller_id"] = json!(2.5);
        assert_eq!(reason(v), RejectReason::MalformedNumber);
    }

    #[test]
    fn a_number_given_as_a_json_integer_is_kept_as_text() {
        let mut v = voice();
        v["caller_id"] = json!(212612345678u64);
        assert_eq!(check(v).unwrap().subscriber, "212612345678");
    }

    #[test]
    fn a_roaming_country_is_uppercased_and_checked() {
        let mut v = voice();
        v["roaming_country"] = json!("fr");
        assert_eq!(check(v).unwrap().roaming_country.as_deref(), Some("FR"));
        let mut v = voice();
        v["roaming_country"] = json!("France");
        assert_eq!(reason(v), RejectReason::InvalidValue);
    }

    #[test]
    fn an_explicit_record_id_is_kept() {
        let mut v = sms();
        v["record_id"] = json!("SW1-000042");
        assert_eq!(check(v).unwrap().record_id.as_deref(), Some("SW1-000042"));
    }

    #[test]
    fn control_characters_never_reach_stored_text() {
        let mut v = sms();
        v["cell_id"] = json!("RABAT\u{0}_1");
        assert_eq!(reason(v), RejectReason::InvalidValue);
        let mut v = sms();
        v["record_id"] = json!("id\u{0}");
        assert_eq!(reason(v), RejectReason::InvalidValue);
        let mut v = sms();
        v["record_type"] = json!("pi\u{0}ng");
        let err = check(v).unwrap_err();
        assert_eq!(err.reason, RejectReason::UnknownRecordType);
        assert!(!err.detail.contains('\0'), "{}", err.detail);
        let mut v = sms();
        v["sender_id"] = json!("06\u{0}12345678");
        let valid = check(v).unwrap();
        let err = crate::domain::NumberPlan::new("MA")
            .unwrap()
            .parse(&valid.subscriber)
            .unwrap_err();
        assert!(!err.detail.contains('\0'), "{}", err.detail);
    }

    #[test]
    fn an_empty_cell_id_is_an_invalid_value() {
        let mut v = sms();
        v["cell_id"] = json!("  ");
        assert_eq!(reason(v), RejectReason::InvalidValue);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever bytes arrive, validation answers (a record or a reason) and never panics.
        #[test]
        fn any_bytes_get_an_answer(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Validation::default().validate(&bytes, Utc::now());
        }

        /// Any non-negative whole duration is kept exactly; any negative one is refused.
        #[test]
        fn durations_are_kept_exactly_or_refused(d in -100_000i64..200_000) {
            let v = serde_json::json!({"record_type":"voice","timestamp":"2026-10-05T10:00:00Z","caller_id":"0612345678",
                "callee_id":"0698765432","duration_sec":d,"cell_id":"FES_1","technology":"4G"});
            let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
            let got = Validation::default().validate(v.to_string().as_bytes(), now);
            if d < 0 || d > MAX_DURATION_SEC {
                prop_assert_eq!(got.unwrap_err().reason, RejectReason::InvalidValue);
            } else {
                prop_assert_eq!(got.unwrap().duration_sec, Some(d as i32));
            }
        }
    }
}
