//! What a generator run sent, counted by type and anomaly, with the outcomes cdrflow must
//! reach, for reconciling a run against `cdrflow stats`.

use super::{Anomaly, Expected, GeneratedRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Expected outcomes, the part of the report `cdrflow stats` must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedOutcomes {
    pub accepted: u64,
    pub duplicates: u64,
    pub suspense: u64,
    pub rejected: BTreeMap<String, u64>,
}

/// What a generator run sent, for reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorReport {
    pub seed: u64,
    pub sent: u64,
    pub by_type: BTreeMap<String, u64>,
    pub anomalies: BTreeMap<String, u64>,
    pub expected: ExpectedOutcomes,
    /// Per Kafka partition, as the broker acknowledged: filled in by whoever sends.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partitions: BTreeMap<i32, PartitionDelivery>,
}

/// What the broker acknowledged for one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDelivery {
    pub records: u64,
    /// The offset after the last acknowledged record.
    pub end_offset: i64,
}

impl GeneratorReport {
    pub fn record(&mut self, r: &GeneratedRecord) {
        self.sent += 1;
        let kind = match (r.record_type, r.anomaly) {
            (Some(t), _) => t.as_str(),
            (None, Some(Anomaly::NonJson)) => "non_json",
            (None, _) => "unknown",
        };
        *self.by_type.entry(kind.to_string()).or_default() += 1;
        if let Some(a) = r.anomaly {
            *self.anomalies.entry(a.as_str().to_string()).or_default() += 1;
        }
        match r.expected {
            Expected::Accepted => self.expected.accepted += 1,
            Expected::Duplicate => self.expected.duplicates += 1,
            Expected::Suspense => self.expected.suspense += 1,
            Expected::Rejected(reason) => {
                *self
                    .expected
                    .rejected
                    .entry(reason.as_str().to_string())
                    .or_default() += 1
            }
        }
    }
}
