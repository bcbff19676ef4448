//! A batch as it moves through mediation: records of one source partition, each with
//! where it came from and what validation and normalization made of it.
//!
//! Batches hold one partition's contiguous offset range, `from_offset..to_offset`, so
//! that committing a batch can be a compare-and-set on that partition's stored offset.

use super::normalize::NormalizedCdr;
use super::record::ValidCdr;
use super::reject::{RejectReason, Rejection};
use chrono::{DateTime, Utc};
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
    Rejected(Rejection),
}

#[derive(Debug, Clone)]
pub struct ProcessedRecord {
    pub source: SourceMeta,
    pub verdict: Verdict,
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
    pub duplicates: u32,
    pub suspense: u32,
    pub rejected: BTreeMap<RejectReason, u32>,
}

impl BatchSummary {
    pub fn rejected_total(&self) -> u32 {
        self.rejected.values().sum()
    }

    /// Every consumed record has exactly one outcome.
    pub fn balances(&self) -> bool {
        self.consumed == self.accepted + self.duplicates + self.suspense + self.rejected_total()
    }
}
