//! The supervised actor tree of `cdrflow run` (started and stopped by `App`):
//!
//! ```text
//! KafkaSource ─send─► Validator ─send─► Normalizer ─send─► Rater ─send─► Committer ─► Postgres
//!   (own thread)      (mediation thread ──────────)   (own thread)  (one thread each;
//!                                                                      partition mod n)
//!                                                     Committer ─hand-over─► Accumulator
//!                                                                          (billing thread)
//! SuspenseResolver, ReportRefresher, Biller (periodic thread)
//! ```
//! Each actor runs under an actix `Supervisor`, and a panic in a handler restarts it
//! (`supervision`). Acknowledgements travel back up as the answer to each `send()`; only
//! the source pulls.

pub mod accumulator;
mod app;
pub mod biller;
pub mod committer;
pub mod faults;
pub mod memory;
pub mod messages;
pub mod rater;
pub mod reporter;
pub mod source;
pub mod stages;
pub mod supervision;
pub mod suspense;

use crate::domain::Validation;
use std::time::Duration;

pub use app::{run, App, Stop};
pub use source::{SourceExit, SourceSettings};

/// Everything `cdrflow run` needs, validated before it gets here.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Every bound of the daemon, from `--memory-mb`.
    pub memory: memory::MemoryBudget,
    pub source: SourceSettings,
    pub http: crate::http::Settings,
    /// Where accepted events are published (None: not published).
    pub normalized_topic: Option<String>,
    /// Where rejects are published (None: not published).
    pub rejected_topic: Option<String>,
    /// Partitions for topics cdrflow creates because they are missing.
    pub topic_partitions: i32,
    pub validation: Validation,
    pub numbering_region: String,
    pub db_pool_size: usize,
    /// Committer actors; partitions are spread over them.
    pub committers: usize,
    /// How often held records are checked for a subscriber that now exists.
    pub suspense_interval: Duration,
    /// How often the rater looks for a newer catalog version.
    pub catalog_check: Duration,
    /// Billing accumulator shards.
    pub accumulators: usize,
    pub accumulator: accumulator::AccumulatorSettings,
    /// Close periods automatically this many days after they end.
    pub close_after_days: Option<u32>,
    /// How often the report aggregates are refreshed; None: never by this process.
    pub report_refresh: Option<Duration>,
}
