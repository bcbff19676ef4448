//! A batch as it moves through mediation: records of one source partition, each with
//! where it came from and what validation and normalization made of it.
//!
//! Batches hold one partition's contiguous offset range, `from_offset..to_offset`, so
//! that committing a batch can be a compare-and-set on that partition's stored offset.

use super::catalog::Catalog;
use super::normalize::{NormalizedCdr, Normalizer};
use super::rating::{self, Rating};
use super::record::ValidCdr;
use super::reject::{RejectReason, Rejection};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;

/// Where a record came from.
#[derive(Debug, Clone)]
pub struct SourceMeta {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// The broker's record timestamp (producer create time): the start of end-to-end latency.
    pub timestamp: Option<DateTime<Utc>>,
}

/// What mediation decided about a record so far.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Just read from the source; nothing decided yet.
    Received,
    /// Read and checked, numbers not yet normalized.
    Valid(ValidCdr),
    Normalized(NormalizedCdr),
    /// Priced for a known customer: ready to be stored as usage.
    Rated(Box<RatedCdr>),
    /// Valid but not billable yet: kept in suspense, processed again later.
    Held(NormalizedCdr, HoldReason),
    Rejected(Rejection),
}

#[derive(Debug, Clone)]
pub struct RatedCdr {
    pub cdr: NormalizedCdr,
    pub customer_id: i64,
    pub catalog_version: i32,
    pub rating: Rating,
}

/// Why a valid record is held in suspense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldReason {
    /// No customer has this MSISDN (yet).
    UnknownSubscriber,
    /// The customer exists but the catalog cannot price the record (a catalog problem;
    /// the text names it).
    Unratable(String),
    /// The event happened before the customer's activation: numbers are recycled, so it
    /// belongs to the number's previous owner and never to this customer's invoice.
    BeforeActivation,
}

impl HoldReason {
    pub fn as_str(&self) -> &str {
        match self {
            HoldReason::UnknownSubscriber => "unknown_subscriber",
            HoldReason::Unratable(why) => why,
            HoldReason::BeforeActivation => "before_activation",
        }
    }
}

/// What rating needs to know of a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub customer_id: i64,
    pub plan: String,
    /// The first day (operator time) the customer is charged for.
    pub activated_on: NaiveDate,
}

/// Rate one normalized record: reference data from the catalog (city, region), then
/// the price for its customer, or the reason it is held.
pub fn rate_record(
    catalog: &Catalog,
    version: i32,
    subscriber: Option<&Subscriber>,
    mut cdr: NormalizedCdr,
) -> Verdict {
    if let Some((city, region)) = catalog.locate(&cdr.cell_id) {
        if cdr.city.as_deref() != Some(city) {
            cdr.city = Some(city.to_string());
        }
        if cdr.region != region {
            cdr.region = region.to_string();
        }
    }
    let Some(sub) = subscriber else {
        return Verdict::Held(cdr, HoldReason::UnknownSubscriber);
    };
    let local_day = cdr
        .event_time
        .with_timezone(&catalog.operator.timezone)
        .date_naive();
    if local_day < sub.activated_on {
        return Verdict::Held(cdr, HoldReason::BeforeActivation);
    }
    match rating::rate(catalog, &sub.plan, &cdr) {
        Ok(rating) => Verdict::Rated(Box::new(RatedCdr {
            cdr,
            customer_id: sub.customer_id,
            catalog_version: version,
            rating,
        })),
        Err(e) => Verdict::Held(cdr, HoldReason::Unratable(format!("unratable: {e}"))),
    }
}

#[derive(Debug, Clone)]
pub struct ProcessedRecord {
    pub source: SourceMeta,
    pub verdict: Verdict,
}

impl ProcessedRecord {
    /// Normalize a valid record's numbers; any other verdict stays as it is.
    pub fn normalize(&mut self, normalizer: &mut Normalizer) {
        self.verdict = match std::mem::replace(&mut self.verdict, Verdict::Received) {
            Verdict::Valid(cdr) => match normalizer.normalize(cdr) {
                Ok(n) => Verdict::Normalized(n),
                Err(rejection) => Verdict::Rejected(rejection),
            },
            decided => decided,
        };
    }
}

/// One partition's contiguous range of records.
#[derive(Debug, Clone)]
pub struct PartitionBatch {
    pub topic: String,
    pub partition: i32,
    /// The stored offset this batch continues from.
    pub from_offset: i64,
    /// The offset to store once the batch is committed (last record's offset + 1).
    pub to_offset: i64,
    pub records: Vec<ProcessedRecord>,
}

/// What a committed batch amounted to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub consumed: u32,
    pub accepted: u32,
    /// Of the accepted, those whose peer is no assigned number (`peer_unverified`). Not
    /// an outcome: they are also counted as accepted.
    pub unverified_peers: u32,
    pub duplicates: u32,
    pub suspense: u32,
    pub rejected: BTreeMap<RejectReason, u32>,
    /// Duplicates of stored events priced again (`replay --rerate`) whose price or
    /// catalog version changed. Not an outcome: they are also counted as duplicates.
    pub rerated: u32,
}

impl PartitionBatch {
    /// The distinct subscribers of the batch's normalized records.
    pub fn subscribers(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .records
            .iter()
            .filter_map(|r| match &r.verdict {
                Verdict::Normalized(n) => Some(n.subscriber.as_str()),
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Rate every normalized record, finding each subscriber with `lookup`; rejects stay
    /// as they are.
    pub fn rate<'s>(
        &mut self,
        catalog: &Catalog,
        version: i32,
        lookup: impl Fn(&str) -> Option<&'s Subscriber>,
    ) {
        for r in &mut self.records {
            r.verdict = match std::mem::replace(&mut r.verdict, Verdict::Received) {
                Verdict::Normalized(n) => {
                    let subscriber = lookup(n.subscriber.as_str());
                    rate_record(catalog, version, subscriber, n)
                }
                decided => decided,
            };
        }
    }
}

impl BatchSummary {
    pub fn rejected_total(&self) -> u32 {
        self.rejected.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::rating::tests::{shipped, voice, MA};

    #[test]
    fn an_event_before_the_subscribers_activation_is_held_as_the_previous_owners() {
        let sub = Subscriber {
            customer_id: 1,
            plan: "student".into(),
            activated_on: NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
        };
        // 23:30 UTC on 1 November is 00:30 on the 2nd in Casablanca (UTC+1): active.
        let first_day = rate_record(
            shipped(),
            1,
            Some(&sub),
            voice("2026-11-01T23:30:00Z", 60, MA),
        );
        assert!(matches!(first_day, Verdict::Rated(_)), "{first_day:?}");
        let day_before = rate_record(
            shipped(),
            1,
            Some(&sub),
            voice("2026-11-01T22:30:00Z", 60, MA),
        );
        assert!(
            matches!(day_before, Verdict::Held(_, HoldReason::BeforeActivation)),
            "{day_before:?}"
        );
        assert_eq!(HoldReason::BeforeActivation.as_str(), "before_activation");
    }
}
