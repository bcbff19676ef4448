//! Why a record was refused: the fixed set of reject reasons and the error that carries
//! one with its human-readable detail.
//!
//! The codes are stored in Postgres, used as metric labels and compared by the
//! reconciliation, so they are part of the public contract: add, never rename.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Every reason a record can be rejected for. A bounded set, safe as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The payload is larger than the configured maximum.
    PayloadTooLarge,
    /// Not UTF-8, not JSON, or JSON nested deeper than the parser accepts.
    InvalidJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// A field the record type requires is absent or null.
    MissingField,
    /// `record_type` is none of voice, sms, data.
    UnknownRecordType,
    /// A negative or non-numeric duration or volume, an unknown technology, a bad country.
    InvalidValue,
    /// A subscriber or peer number that no numbering plan accepts.
    MalformedNumber,
    /// A timestamp that cannot be read as ISO-8601.
    InvalidTimestamp,
    /// A timestamp further in the future than the allowed clock skew.
    FutureTimestamp,
    /// A timestamp older than the allowed event age at the record's arrival (a switch
    /// after a clock reset, a file found years later): it would open a billing period
    /// long closed or never opened.
    TooOld,
    /// Valid to cdrflow, but Postgres refuses to store it for good (a constraint, a
    /// trigger, a value out of a column's range); the detail gives the SQLSTATE.
    StorageRefused,
}

impl RejectReason {
    pub const ALL: [RejectReason; 11] = [
        RejectReason::PayloadTooLarge,
        RejectReason::InvalidJson,
        RejectReason::NotAnObject,
        RejectReason::MissingField,
        RejectReason::UnknownRecordType,
        RejectReason::InvalidValue,
        RejectReason::MalformedNumber,
        RejectReason::InvalidTimestamp,
        RejectReason::FutureTimestamp,
        RejectReason::TooOld,
        RejectReason::StorageRefused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::PayloadTooLarge => "payload_too_large",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::MissingField => "missing_field",
            RejectReason::UnknownRecordType => "unknown_record_type",
            RejectReason::InvalidValue => "invalid_value",
            RejectReason::MalformedNumber => "malformed_number",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
            RejectReason::FutureTimestamp => "future_timestamp",
            RejectReason::TooOld => "too_old",
            RejectReason::StorageRefused => "storage_refused",
        }
    }

    pub fn parse(code: &str) -> Option<RejectReason> {
        RejectReason::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused record: the reason code and what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

/// Input text as it may appear in a reject detail: at most 40 characters, control
/// characters escaped (Postgres `text` refuses NUL, and a detail must stay printable).
pub(crate) fn shown(s: &str) -> String {
    s.chars()
        .take(40)
        .collect::<String>()
        .escape_debug()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_code_parses_back_to_itself() {
        for reason in RejectReason::ALL {
            assert_eq!(RejectReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(RejectReason::parse("nope"), None);
    }
}
