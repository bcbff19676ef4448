//! The pure core: records, validation, normalization, the catalog and rating, billing,
//! report tables.
//! No actix, rdkafka, tokio, postgres, prometheus or tracing here; everything is
//! unit-tested without a server.

pub mod batch;
pub mod billing;
pub mod catalog;
pub mod cells;
pub mod customer;
pub mod msisdn;
pub mod normalize;
pub mod rating;
pub mod record;
pub mod reject;
pub mod replay;
pub mod report;

pub use msisdn::{Msisdn, NumberPlan, PeerClass};
pub use normalize::{NormalizedCdr, Normalizer};
pub use record::{RecordType, Technology, ValidCdr, Validation};
pub use reject::{RejectReason, Rejection};
