//! From a checked record to the canonical event cdrflow stores and prices: E.164
//! numbers, UTC time, integer units, canonical technology, city and region, and the
//! `record_id` that makes every event unique.

use super::cells::{self, UNKNOWN_REGION};
use super::msisdn::{CachedNumberPlan, Msisdn, NumberPlan, PeerClass};
use super::record::{RecordType, Technology, ValidCdr};
use super::reject::Rejection;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The canonical event. Everything downstream (storage, rating, billing) reads this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizedCdr {
    pub record_id: String,
    pub record_type: RecordType,
    /// The subscriber who pays for the event, E.164.
    pub subscriber: Msisdn,
    pub peer: Option<Msisdn>,
    /// ISO 3166 alpha-2 of the peer's number.
    pub peer_country: Option<String>,
    pub peer_class: Option<PeerClass>,
    /// The peer is in no range the numbering plan lists as assigned: it is classified
    /// by its country calling code alone. Events stored or held before the flag existed
    /// had only valid peers, hence the default.
    #[serde(default)]
    pub peer_unverified: bool,
    pub event_time: DateTime<Utc>,
    pub duration_sec: Option<i32>,
    pub volume_bytes: Option<i64>,
    pub session_duration_sec: Option<i32>,
    pub cell_id: String,
    pub city: Option<String>,
    pub region: String,
    pub technology: Technology,
    pub roaming_country: Option<String>,
}

/// Normalizes records; owns the number-parsing cache, so one per normalizing actor.
#[derive(Debug)]
pub struct Normalizer {
    numbers: CachedNumberPlan,
}

impl Normalizer {
    pub fn new(plan: NumberPlan) -> Self {
        Normalizer {
            numbers: CachedNumberPlan::new(plan),
        }
    }

    /// A normalizer whose number cache keeps at most `numbers` entries.
    pub fn with_capacity(plan: NumberPlan, numbers: usize) -> Self {
        Normalizer {
            numbers: CachedNumberPlan::with_capacity(plan, numbers),
        }
    }

    /// Parsed numbers cached.
    pub fn cached_numbers(&self) -> usize {
        self.numbers.len()
    }

    pub fn normalize(&mut self, cdr: ValidCdr) -> Result<NormalizedCdr, Rejection> {
        let subscriber = self.numbers.parse(&cdr.subscriber)?.msisdn;
        let peer = match &cdr.peer {
            Some(raw) => Some(self.numbers.parse_peer(raw)?),
            None => None,
        };
        let location = cells::locate(&cdr.cell_id);
        let mut out = NormalizedCdr {
            record_id: String::new(),
            record_type: cdr.record_type,
            subscriber,
            peer_country: peer.as_ref().and_then(|p| p.country.clone()),
            peer_class: peer.as_ref().map(|p| p.class),
            peer_unverified: peer.as_ref().is_some_and(|p| p.unverified),
            peer: peer.map(|p| p.msisdn),
            event_time: cdr.event_time,
            duration_sec: cdr.duration_sec,
            volume_bytes: cdr.volume_bytes,
            session_duration_sec: cdr.session_duration_sec,
            cell_id: cdr.cell_id.to_ascii_uppercase(),
            city: location.map(|l| l.city.to_string()),
            region: location.map_or(UNKNOWN_REGION, |l| l.region).to_string(),
            technology: cdr.technology,
            roaming_country: cdr.roaming_country,
        };
        out.record_id = match cdr.record_id {
            Some(id) => id,
            None => fingerprint(&out),
        };
        Ok(out)
    }
}

/// A deterministic id from the canonical content, so that exact duplicates, in whatever
/// number format or time zone they were written, collapse to one event. What is derived
/// from the numbers (country, class, whether the peer is verified) stays out: metadata
/// that learns a new range must not give a stored event a second id.
pub fn fingerprint(cdr: &NormalizedCdr) -> String {
    let opt_num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let canonical = [
        cdr.record_type.as_str().to_string(),
        cdr.subscriber.to_string(),
        cdr.peer.as_ref().map(Msisdn::to_string).unwrap_or_default(),
        cdr.event_time.to_rfc3339_opts(SecondsFormat::Micros, true),
        opt_num(cdr.duration_sec.map(i64::from)),
        opt_num(cdr.volume_bytes),
        opt_num(cdr.session_duration_sec.map(i64::from)),
        cdr.cell_id.clone(),
        cdr.technology.as_str().to_string(),
        cdr.roaming_country.clone().unwrap_or_default(),
    ]
    .join("|");
    let digest = Sha256::digest(canonical.as_bytes());
    format!("fp-{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::Validation;
    use crate::domain::reject::RejectReason;
    use chrono::TimeZone;
    use serde_json::json;

    fn normalize(v: serde_json::Value) -> Result<NormalizedCdr, Rejection> {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let valid = Validation::default().validate(v.to_string().as_bytes(), now)?;
        Normalizer::new(NumberPlan::new("MA").unwrap()).normalize(valid)
    }

    fn voice(caller: &str, ts: &str) -> serde_json::Value {
        json!({"record_type":"voice","timestamp":ts,"caller_id":caller,"callee_id":"+33612345678",
               "duration_sec":60,"cell_id":"casablanca_12","technology":"lte"})
    }

    #[test]
    fn a_voice_record_is_normalized_to_e164_utc_and_region() {
        let n = normalize(voice("0612345678", "2026-10-05T10:00:00")).unwrap();
        assert_eq!(n.subscriber.as_str(), "+212612345678");
        assert_eq!(n.peer.as_ref().unwrap().as_str(), "+33612345678");
        assert_eq!(n.peer_country.as_deref(), Some("FR"));
        assert_eq!(n.peer_class, Some(PeerClass::International));
        assert_eq!(
            n.event_time,
            Utc.with_ymd_and_hms(2026, 10, 5, 9, 0, 0).unwrap()
        );
        assert_eq!(n.cell_id, "CASABLANCA_12");
        assert_eq!(n.region, "Casablanca-Settat");
        assert_eq!(n.technology, Technology::G4);
        assert!(n.record_id.starts_with("fp-"));
    }

    #[test]
    fn the_same_event_written_two_ways_gets_the_same_record_id() {
        let a = normalize(voice("0612345678", "2026-10-05T10:00:00")).unwrap();
        let b = normalize(voice("+212612345678", "2026-10-05T09:00:00Z")).unwrap();
        assert_eq!(a.record_id, b.record_id);
    }

    #[test]
    fn a_different_duration_gives_a_different_record_id() {
        let a = normalize(voice("0612345678", "2026-10-05T10:00:00")).unwrap();
        let mut v = voice("0612345678", "2026-10-05T10:00:00");
        v["duration_sec"] = json!(61);
        assert_ne!(a.record_id, normalize(v).unwrap().record_id);
    }

    #[test]
    fn a_malformed_subscriber_is_rejected() {
        assert_eq!(
            normalize(voice("abcde", "2026-10-05T10:00:00"))
                .unwrap_err()
                .reason,
            RejectReason::MalformedNumber
        );
    }

    #[test]
    fn a_malformed_peer_is_rejected() {
        let mut v = voice("0612345678", "2026-10-05T10:00:00");
        v["callee_id"] = json!("12");
        assert_eq!(
            normalize(v).unwrap_err().reason,
            RejectReason::MalformedNumber
        );
    }

    #[test]
    fn a_peer_in_no_assigned_range_is_accepted_unverified_with_its_country() {
        let mut v = voice("0612345678", "2026-10-05T10:00:00");
        v["callee_id"] = json!("+44123456789");
        let n = normalize(v).unwrap();
        assert_eq!(n.peer.as_ref().unwrap().as_str(), "+44123456789");
        assert_eq!(n.peer_country.as_deref(), Some("GB"));
        assert_eq!(n.peer_class, Some(PeerClass::International));
        assert!(n.peer_unverified);
    }

    #[test]
    fn a_subscriber_in_no_assigned_range_is_a_malformed_number() {
        assert_eq!(
            normalize(voice("+44123456789", "2026-10-05T10:00:00"))
                .unwrap_err()
                .reason,
            RejectReason::MalformedNumber
        );
    }

    #[test]
    fn a_valid_peer_is_not_flagged_and_the_flag_is_not_part_of_the_record_id() {
        let n = normalize(voice("0612345678", "2026-10-05T10:00:00")).unwrap();
        assert!(!n.peer_unverified);
        let mut flagged = n.clone();
        flagged.peer_unverified = true;
        assert_eq!(fingerprint(&flagged), n.record_id);
    }

    #[test]
    fn a_normalized_event_stored_without_the_flag_reads_as_verified() {
        let n = normalize(voice("0612345678", "2026-10-05T10:00:00")).unwrap();
        let mut stored = serde_json::to_value(&n).unwrap();
        stored.as_object_mut().unwrap().remove("peer_unverified");
        let read: NormalizedCdr = serde_json::from_value(stored).unwrap();
        assert_eq!(read, n);
    }

    #[test]
    fn a_cell_in_an_unknown_city_is_accepted_with_an_unknown_region() {
        let mut v = voice("0612345678", "2026-10-05T10:00:00");
        v["cell_id"] = json!("ATLANTIS_1");
        let n = normalize(v).unwrap();
        assert_eq!(n.city, None);
        assert_eq!(n.region, UNKNOWN_REGION);
    }

    #[test]
    fn an_explicit_record_id_wins_over_the_fingerprint() {
        let mut v = voice("0612345678", "2026-10-05T10:00:00");
        v["record_id"] = json!("MSC7-42");
        assert_eq!(normalize(v).unwrap().record_id, "MSC7-42");
    }

    #[test]
    fn a_domestic_sms_peer_is_classified_domestic() {
        let v = json!({"record_type":"sms","timestamp":"2026-10-05T10:00:00","sender_id":"212612345678",
                       "receiver_id":"0661234567","cell_id":"RABAT_1","technology":"4G"});
        let n = normalize(v).unwrap();
        assert_eq!(n.peer_class, Some(PeerClass::Domestic));
        assert_eq!(n.peer_country.as_deref(), Some("MA"));
    }
}
