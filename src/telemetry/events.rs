//! One struct per observable event. A call site builds the event and calls `emit`, which
//! writes both the log line and the metrics, so the two never disagree.

use super::metrics::Metrics;
use super::metrics::OffsetAnomaly;
use crate::domain::batch::BatchSummary;
use tracing::{debug, error, info, warn};

pub struct BatchCommitted<'a> {
    pub partition: i32,
    pub from_offset: i64,
    pub to_offset: i64,
    pub summary: &'a BatchSummary,
    pub commit_seconds: f64,
    /// Seconds from each accepted record's broker timestamp to the commit.
    pub latencies: &'a [f64],
}

impl BatchCommitted<'_> {
    pub fn emit(&self, m: &Metrics) {
        let s = self.summary;
        m.records_consumed.inc_by(s.consumed as u64);
        m.records_accepted.inc_by(s.accepted as u64);
        m.records_duplicate.inc_by(s.duplicates as u64);
        m.records_suspense.inc_by(s.suspense as u64);
        m.records_rerated.inc_by(s.rerated as u64);
        for (reason, n) in &s.rejected {
            m.records_rejected
                .with_label_values(&[reason.as_str()])
                .inc_by(*n as u64);
        }
        m.batches_committed.inc();
        m.batch_records.observe(s.consumed as f64);
        m.commit_duration.observe(self.commit_seconds);
        for l in self.latencies {
            m.end_to_end_latency.observe(*l);
        }
        debug!(
            partition = self.partition,
            from = self.from_offset,
            to = self.to_offset,
            consumed = s.consumed,
            accepted = s.accepted,
            rejected = s.rejected_total(),
            duplicates = s.duplicates,
            suspense = s.suspense,
            rerated = s.rerated,
            commit_ms = (self.commit_seconds * 1000.0) as u64,
            "Committed batch."
        );
    }
}

pub struct BatchFenced {
    pub partition: i32,
    pub from_offset: i64,
    pub stored: Option<i64>,
}

impl BatchFenced {
    pub fn emit(&self, m: &Metrics) {
        m.batches_fenced.inc();
        info!(partition = self.partition, from = self.from_offset, stored = ?self.stored, "Stored offset moved; batch dropped and partition resumed from it.");
    }
}

/// Kinds of batch failure, a bounded label set.
#[derive(Debug, Clone, Copy)]
pub enum FailureKind {
    Database,
    Publish,
    Pipeline,
    /// Priced with a catalog older than a rerate replay asked for.
    Catalog,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Database => "database",
            FailureKind::Publish => "publish",
            FailureKind::Pipeline => "pipeline",
            FailureKind::Catalog => "catalog",
        }
    }
}

pub struct BatchFailed<'a> {
    pub partition: i32,
    pub from_offset: i64,
    pub kind: FailureKind,
    pub error: &'a dyn std::fmt::Display,
    pub backoff_secs: u64,
}

impl BatchFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.batch_failures
            .with_label_values(&[self.kind.as_str()])
            .inc();
        if let FailureKind::Database = self.kind {
            m.db_errors.with_label_values(&["committer"]).inc();
        }
        m.source_backoff_seconds.set(self.backoff_secs as i64);
        warn!(
            partition = self.partition,
            from = self.from_offset,
            kind = self.kind.as_str(),
            error = %self.error,
            backoff_secs = self.backoff_secs,
            "Failed to commit batch; it will be read again after back-off."
        );
    }
}

/// A partition's stored offset lies past the broker's log end: the partition is held.
pub struct OffsetBeyondLogEnd<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub group: &'a str,
    pub stored: i64,
    pub log_start: i64,
    pub log_end: i64,
}

impl OffsetBeyondLogEnd<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.offset_anomalies
            .with_label_values(&[OffsetAnomaly::BeyondEnd.as_str()])
            .inc();
        error!(
            topic = self.topic,
            partition = self.partition,
            stored_offset = self.stored,
            log_start = self.log_start,
            log_end = self.log_end,
            "Stored offset {} of {} partition {} is past the broker's log end {} (topic recreated or log truncated?): the partition is held and nothing of it is consumed. \
             Once you know where its records start, resume it with `cdrflow replay --group {} --topic {} --partitions {} --to-offset N` (0 after a topic was recreated).",
            self.stored, self.topic, self.partition, self.log_end, self.group, self.topic, self.partition
        );
    }
}

/// Records were deleted on the broker before they were read; the range is recorded as a
/// gap and consumption goes on from the log start.
pub struct OffsetGapRecorded<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub from_offset: i64,
    pub to_offset: i64,
}

impl OffsetGapRecorded<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.offset_anomalies
            .with_label_values(&[OffsetAnomaly::BelowStart.as_str()])
            .inc();
        error!(
            topic = self.topic,
            partition = self.partition,
            from = self.from_offset,
            to = self.to_offset,
            lost = self.to_offset - self.from_offset,
            "Records were deleted on the broker before they were read; the gap is recorded (`cdrflow stats` shows it) and the partition goes on from the log start."
        );
    }
}

/// Records Postgres refused for good, found by splitting their batch; they are stored as
/// `storage_refused` rejects (counted with the batch) and the rest of the batch commits.
pub struct RecordsRefused<'a> {
    pub partition: i32,
    pub offsets: &'a [i64],
    pub error: &'a dyn std::fmt::Display,
}

impl RecordsRefused<'_> {
    pub fn emit(&self, _: &Metrics) {
        warn!(
            partition = self.partition,
            offsets = ?self.offsets,
            error = %self.error,
            "Postgres refused records of a batch for good; they are rejected as storage_refused and the rest commits."
        );
    }
}

pub struct ActorPanicked<'a> {
    pub actor: &'static str,
    /// What it was working on: a batch (partition and offsets), a periodic task.
    pub work: &'a str,
    pub message: &'a str,
}

impl ActorPanicked<'_> {
    pub fn emit(&self, _: &Metrics) {
        error!(
            actor = self.actor,
            work = self.work,
            panic = self.message,
            "Actor failed; its work is retried and the actor restarted."
        );
    }
}

pub struct ActorRestarted {
    pub actor: &'static str,
}

impl ActorRestarted {
    pub fn emit(&self, m: &Metrics) {
        m.actor_restarts.with_label_values(&[self.actor]).inc();
        warn!(actor = self.actor, "Actor restarted by its supervisor.");
    }
}

pub struct CatalogLoaded<'a> {
    pub version: i32,
    pub label: &'a str,
}

impl CatalogLoaded<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.catalog_version.set(self.version as i64);
        info!(
            version = self.version,
            label = self.label,
            "Rating with catalog version."
        );
    }
}

pub struct SuspenseResolved {
    pub rated: u64,
    pub duplicates: u64,
    pub unratable: u64,
}

impl SuspenseResolved {
    pub fn emit(&self, m: &Metrics) {
        m.suspense_resolved
            .with_label_values(&["rated"])
            .inc_by(self.rated);
        m.suspense_resolved
            .with_label_values(&["duplicate"])
            .inc_by(self.duplicates);
        if self.rated + self.duplicates + self.unratable > 0 {
            info!(
                rated = self.rated,
                duplicates = self.duplicates,
                unratable = self.unratable,
                "Resolved suspense records whose subscriber now exists."
            );
        }
    }
}

pub struct AlertRaised {
    pub threshold: i16,
}

impl AlertRaised {
    pub fn emit(&self, m: &Metrics) {
        let label = match self.threshold {
            80 => "80",
            100 => "100",
            _ => "other",
        };
        m.alerts_raised.with_label_values(&[label]).inc();
        info!(threshold = self.threshold, "Credit-limit alert raised.");
    }
}

pub struct UsageLate {
    pub records: u32,
}

impl UsageLate {
    pub fn emit(&self, m: &Metrics) {
        if self.records > 0 {
            m.records_late.inc_by(self.records as u64);
            info!(
                records = self.records,
                "Usage of a closed period: owed on the next invoice."
            );
        }
    }
}

pub struct InvoicesIssued {
    pub period: chrono::NaiveDate,
    pub invoices: u64,
}

impl InvoicesIssued {
    pub fn emit(&self, m: &Metrics) {
        m.invoices_issued.inc_by(self.invoices);
        info!(period = %self.period, invoices = self.invoices, "Invoices issued.");
    }
}

/// The broker's view of how far this instance is behind, per owned partition.
pub struct ConsumerLagMeasured<'a> {
    /// (partition, records not yet committed)
    pub partitions: &'a [(i32, i64)],
}

impl ConsumerLagMeasured<'_> {
    pub fn emit(&self, m: &Metrics) {
        for (partition, lag) in self.partitions {
            m.consumer_lag
                .with_label_values(&[&partition.to_string()])
                .set(*lag);
        }
        // Partitions no longer owned leave the series (without a moment of no series).
        m.forget_lag_except(self.partitions.iter().map(|(p, _)| *p));
        debug!(partitions = ?self.partitions, "Consumer lag measured.");
    }
}

/// A Postgres operation outside the batch commit failed; the actor tries again later.
pub struct DatabaseFailed<'a> {
    pub actor: &'static str,
    /// What was being done, as the log line says it ("Failed to …").
    pub action: &'static str,
    pub error: &'a dyn std::fmt::Display,
}

impl DatabaseFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.db_errors.with_label_values(&[self.actor]).inc();
        warn!(actor = self.actor, error = %self.error, "Failed to {}.", self.action);
    }
}

/// The API turned a request away (401 or 429). Logged at debug only: a client retrying
/// in a loop must not flood the log; the counter shows it.
pub struct ApiRequestRefused {
    pub reason: super::metrics::Refusal,
}

impl ApiRequestRefused {
    pub fn emit(&self, m: &Metrics) {
        m.api_requests_refused
            .with_label_values(&[self.reason.as_str()])
            .inc();
        debug!(reason = self.reason.as_str(), "Refused an API request.");
    }
}

/// Usage newly stored by a commit, priced: the amounts by service.
pub struct UsageRated<'a> {
    /// (service, amount in the catalog currency)
    pub amounts: &'a [(&'static str, rust_decimal::Decimal)],
}

impl UsageRated<'_> {
    pub fn emit(&self, m: &Metrics) {
        use rust_decimal::prelude::ToPrimitive;
        for (service, amount) in self.amounts {
            // Observability only: Prometheus samples are floats. Money is summed in Postgres.
            if let Some(v) = amount.to_f64().filter(|v| *v > 0.0) {
                m.rated_amount.with_label_values(&[service]).inc_by(v);
            }
        }
    }
}

/// The report aggregates were recomputed.
pub struct ReportsRefreshed {
    /// Seconds Postgres took.
    pub seconds: f64,
    /// Billing periods recomputed.
    pub periods: usize,
    pub at: chrono::DateTime<chrono::Utc>,
}

impl ReportsRefreshed {
    pub fn emit(&self, m: &Metrics) {
        m.report_refresh_seconds.set(self.seconds);
        m.report_refreshed_at.set(self.at.timestamp());
        info!(
            seconds = self.seconds,
            periods = self.periods,
            "Report aggregates refreshed."
        );
    }
}
