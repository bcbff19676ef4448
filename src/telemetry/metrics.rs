//! Every Prometheus metric cdrflow exposes, registered on an injected `Registry` so each
//! test builds its own and reads exact values. The only importer of `prometheus`.

use prometheus::{
    CounterVec, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts,
};

pub use prometheus::{Encoder, Registry, TextEncoder};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub records_consumed: IntCounter,
    pub records_accepted: IntCounter,
    pub records_rejected: IntCounterVec,
    pub records_duplicate: IntCounter,
    pub records_suspense: IntCounter,
    pub records_rerated: IntCounter,
    pub suspense_resolved: IntCounterVec,
    pub catalog_version: IntGauge,
    pub batches_committed: IntCounter,
    pub batches_fenced: IntCounter,
    pub batch_failures: IntCounterVec,
    pub batch_records: Histogram,
    pub commit_duration: Histogram,
    pub end_to_end_latency: Histogram,
    pub inflight_batches: IntGauge,
    /// What the batches in flight weigh (`pipeline::memory`), and the most they may.
    pub inflight_bytes: IntGauge,
    pub inflight_bytes_limit: IntGauge,
    pub actor_restarts: IntCounterVec,
    pub source_backoff_seconds: IntGauge,
    pub offset_anomalies: IntCounterVec,
    pub held_partitions: IntGauge,
    pub alerts_raised: IntCounterVec,
    pub records_late: IntCounter,
    pub invoices_issued: IntCounter,
    pub stage_records: IntCounterVec,
    pub stage_queue_depth: IntGaugeVec,
    pub consumer_lag: IntGaugeVec,
    pub rated_amount: CounterVec,
    pub db_pool_connections: IntGaugeVec,
    pub cache_entries: IntGaugeVec,
    pub db_errors: IntCounterVec,
    pub report_refresh_seconds: Gauge,
    pub report_refreshed_at: IntGauge,
    pub api_requests_refused: IntCounterVec,
}

/// One pipeline stage's handles: the batches waiting in its mailbox and the records it
/// has handled. The sender counts a batch in, the stage counts it out when it starts on
/// it (a supervised stage keeps its mailbox across a restart, so every batch sent is
/// taken out once).
#[derive(Clone)]
pub struct StageMetrics {
    /// None for the source, which has no mailbox.
    queued: Option<IntGauge>,
    records: IntCounter,
}

/// The daemon's bounded caches, as `cdrflow_cache_entries` labels them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    Subscribers,
    Numbers,
    BucketKeys,
    RecordIds,
    SettledMonths,
}

impl Cache {
    pub const ALL: [Cache; 5] = [
        Cache::Subscribers,
        Cache::Numbers,
        Cache::BucketKeys,
        Cache::RecordIds,
        Cache::SettledMonths,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cache::Subscribers => "subscribers",
            Cache::Numbers => "numbers",
            Cache::BucketKeys => "bucket_keys",
            Cache::RecordIds => "record_ids",
            Cache::SettledMonths => "settled_months",
        }
    }
}

/// One holder's part of a cache's gauge: several holders (committers, shards) add theirs
/// to the same label, and a holder that goes away takes its part back.
pub struct CacheGauge {
    gauge: IntGauge,
    reported: i64,
}

impl CacheGauge {
    /// This holder now holds `entries`.
    pub fn set(&mut self, entries: usize) {
        let entries = entries as i64;
        self.gauge.add(entries - self.reported);
        self.reported = entries;
    }
}

impl Drop for CacheGauge {
    fn drop(&mut self) {
        self.gauge.sub(self.reported);
    }
}

impl StageMetrics {
    /// A batch was put into this stage's mailbox.
    pub fn enqueued(&self) {
        if let Some(q) = &self.queued {
            q.inc();
        }
    }

    /// The stage took a batch out of its mailbox.
    pub fn taken(&self) {
        if let Some(q) = &self.queued {
            q.dec();
        }
    }

    /// The stage handled `records` records.
    pub fn handled(&self, records: usize) {
        self.records.inc_by(records as u64);
    }
}

fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> prometheus::Result<C> {
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    register(registry, IntCounter::with_opts(Opts::new(name, help))?)
}

fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> prometheus::Result<Histogram> {
    register(
        registry,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?,
    )
}

fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    register(registry, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    register(registry, IntGauge::with_opts(Opts::new(name, help))?)
}

/// How a stored offset can fall outside the broker's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetAnomaly {
    /// Past the log end: the topic was recreated or its log truncated.
    BeyondEnd,
    /// Before the log start: records were deleted before they were read.
    BelowStart,
}

impl OffsetAnomaly {
    pub const ALL: [OffsetAnomaly; 2] = [OffsetAnomaly::BeyondEnd, OffsetAnomaly::BelowStart];

    pub fn as_str(self) -> &'static str {
        match self {
            OffsetAnomaly::BeyondEnd => "beyond_end",
            OffsetAnomaly::BelowStart => "below_start",
        }
    }
}

/// Why the API turned a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or not the configured one (401).
    Unauthorized,
    /// Every API slot taken (429).
    Busy,
}

impl Refusal {
    pub const ALL: [Refusal; 2] = [Refusal::Unauthorized, Refusal::Busy];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::Busy => "busy",
        }
    }
}

/// Every value of the bounded label sets, exposed at zero from the start so a rate or a
/// table shows "none" rather than "no data".
const STAGES: [&str; 6] = [
    "source",
    "validator",
    "normalizer",
    "rater",
    "committer",
    "accumulator",
];
const ACTORS: [&str; 9] = [
    "source",
    "validator",
    "normalizer",
    "rater",
    "committer",
    "accumulator",
    "suspense",
    "biller",
    "reporter",
];

impl Metrics {
    pub fn new(registry: Registry) -> prometheus::Result<Self> {
        let m = Self::register(registry)?;
        for cache in Cache::ALL {
            m.cache_entries.with_label_values(&[cache.as_str()]);
        }
        for reason in crate::domain::RejectReason::ALL {
            m.records_rejected.with_label_values(&[reason.as_str()]);
        }
        for kind in ["database", "publish", "pipeline", "catalog"] {
            m.batch_failures.with_label_values(&[kind]);
        }
        for actor in ACTORS {
            m.actor_restarts.with_label_values(&[actor]);
        }
        for kind in OffsetAnomaly::ALL {
            m.offset_anomalies.with_label_values(&[kind.as_str()]);
        }
        for reason in Refusal::ALL {
            m.api_requests_refused.with_label_values(&[reason.as_str()]);
        }
        for actor in [
            "committer",
            "rater",
            "accumulator",
            "suspense",
            "biller",
            "reporter",
        ] {
            m.db_errors.with_label_values(&[actor]);
        }
        for stage in STAGES {
            // The source has no mailbox; the accumulator is fed customers' deltas, not records.
            if stage != "source" {
                m.stage_queue_depth.with_label_values(&[stage]);
            }
            if stage != "accumulator" {
                m.stage_records.with_label_values(&[stage]);
            }
        }
        for service in crate::domain::RecordType::ALL {
            m.rated_amount.with_label_values(&[service.as_str()]);
        }
        for threshold in ["80", "100"] {
            m.alerts_raised.with_label_values(&[threshold]);
        }
        for resolution in ["rated", "duplicate"] {
            m.suspense_resolved.with_label_values(&[resolution]);
        }
        m.observe_pool(0, 0, 0, 0);
        Ok(m)
    }

    fn register(registry: Registry) -> prometheus::Result<Self> {
        let r = &registry;
        let latency = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        Ok(Metrics {
            records_consumed: counter(
                r,
                "cdrflow_records_consumed_total",
                "Records read from the source topic and committed with an outcome.",
            )?,
            alerts_raised: counter_vec(
                r,
                "cdrflow_alerts_raised_total",
                "Credit-limit alerts raised (once per customer, period and threshold).",
                &["threshold"],
            )?,
            records_late: counter(
                r,
                "cdrflow_records_late_total",
                "Accepted records of an already closed period, billed on the next invoice.",
            )?,
            invoices_issued: counter(
                r,
                "cdrflow_invoices_issued_total",
                "Invoices numbered and stored by this process.",
            )?,
            records_accepted: counter(
                r,
                "cdrflow_records_accepted_total",
                "Records stored as new usage events.",
            )?,
            records_rejected: counter_vec(
                r,
                "cdrflow_records_rejected_total",
                "Records refused, by reason.",
                &["reason"],
            )?,
            records_duplicate: counter(
                r,
                "cdrflow_records_duplicate_total",
                "Records already stored (same record_id): counted, never billed.",
            )?,
            records_suspense: counter(
                r,
                "cdrflow_records_suspense_total",
                "Valid records of unknown subscribers, held in suspense.",
            )?,
            records_rerated: counter(
                r,
                "cdrflow_records_rerated_total",
                "Stored events priced again by a rerate replay whose price or catalog version changed.",
            )?,
            suspense_resolved: counter_vec(
                r,
                "cdrflow_suspense_resolved_total",
                "Suspense records released once their subscriber existed, by resolution (rated, duplicate).",
                &["resolution"],
            )?,
            catalog_version: gauge(
                r,
                "cdrflow_catalog_version",
                "The catalog version the rater prices with.",
            )?,
            batches_committed: counter(
                r,
                "cdrflow_batches_committed_total",
                "Batches committed to Postgres with their offsets.",
            )?,
            batches_fenced: counter(
                r,
                "cdrflow_batches_fenced_total",
                "Batches dropped because the stored offset had moved (rebalance or replay).",
            )?,
            batch_failures: counter_vec(
                r,
                "cdrflow_batch_failures_total",
                "Batches that failed and will be read again, by kind.",
                &["kind"],
            )?,
            batch_records: histogram(
                r,
                "cdrflow_batch_records",
                "Records per committed batch.",
                vec![1.0, 10.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0],
            )?,
            commit_duration: histogram(
                r,
                "cdrflow_commit_duration_seconds",
                "Time to write and commit one batch.",
                latency.clone(),
            )?,
            end_to_end_latency: histogram(
                r,
                "cdrflow_end_to_end_latency_seconds",
                "From the record's broker timestamp to its commit.",
                latency,
            )?,
            inflight_batches: gauge(
                r,
                "cdrflow_inflight_batches",
                "Batches sent down the pipeline and not yet acknowledged.",
            )?,
            inflight_bytes: gauge(
                r,
                "cdrflow_inflight_bytes",
                "What the batches in flight weigh: their payloads plus a measured cost per record.",
            )?,
            inflight_bytes_limit: gauge(
                r,
                "cdrflow_inflight_bytes_limit",
                "The most the batches in flight may weigh, from --memory-mb; one batch always goes.",
            )?,
            actor_restarts: counter_vec(
                r,
                "cdrflow_actor_restarts_total",
                "Actor restarts by their supervisor, by actor.",
                &["actor"],
            )?,
            source_backoff_seconds: gauge(
                r,
                "cdrflow_source_backoff_seconds",
                "Current back-off of the source after a failed batch (0 when fetching).",
            )?,
            offset_anomalies: counter_vec(
                r,
                "cdrflow_offset_anomalies_total",
                "Stored offsets the broker's log did not contain, by kind: beyond_end (topic recreated or log truncated; the partition is held) or below_start (records deleted before they were read; recorded as a gap).",
                &["kind"],
            )?,
            held_partitions: gauge(
                r,
                "cdrflow_held_partitions",
                "Partitions held because their stored offset is beyond the broker's log end; resumed by `cdrflow replay`.",
            )?,
            stage_records: counter_vec(
                r,
                "cdrflow_stage_records_total",
                "Records handled by each pipeline stage (source, validator, normalizer, rater, committer).",
                &["stage"],
            )?,
            stage_queue_depth: gauge_vec(
                r,
                "cdrflow_stage_queue_depth",
                "Batches waiting in each stage's mailbox (validator, normalizer, rater, committer, accumulator).",
                &["stage"],
            )?,
            consumer_lag: gauge_vec(
                r,
                "cdrflow_consumer_lag",
                "Records on the broker not yet committed by this instance, per owned partition (librdkafka statistics, every 5 s).",
                &["partition"],
            )?,
            rated_amount: register(
                r,
                CounterVec::new(
                    Opts::new(
                        "cdrflow_rated_amount_total",
                        "Rated amount of the usage stored, by service, in the catalog currency. A float for dashboards: invoices are computed in Postgres with exact decimals.",
                    ),
                    &["service"],
                )?,
            )?,
            db_pool_connections: gauge_vec(
                r,
                "cdrflow_db_pool_connections",
                "The daemon's Postgres pool, sampled at each scrape: max, open, idle, waiting (tasks waiting for a connection).",
                &["state"],
            )?,
            cache_entries: gauge_vec(
                r,
                "cdrflow_cache_entries",
                "Entries held by each of the daemon's bounded caches (their bounds come from --memory-mb).",
                &["cache"],
            )?,
            db_errors: counter_vec(
                r,
                "cdrflow_db_errors_total",
                "Failed Postgres operations, by actor (the work is retried).",
                &["actor"],
            )?,
            report_refresh_seconds: register(
                r,
                Gauge::with_opts(Opts::new(
                    "cdrflow_report_refresh_seconds",
                    "How long the last refresh of the report aggregates took in Postgres.",
                ))?,
            )?,
            report_refreshed_at: gauge(
                r,
                "cdrflow_report_refreshed_timestamp_seconds",
                "When the report aggregates were last refreshed (Unix time); 0 before the first.",
            )?,
            api_requests_refused: counter_vec(
                r,
                "cdrflow_api_requests_refused_total",
                "API requests turned away, by reason: unauthorized (401), busy (429, every slot taken).",
                &["reason"],
            )?,
            registry,
        })
    }

    /// The handles of one pipeline stage.
    /// A holder's part of `cache`'s entries gauge.
    pub fn cache(&self, cache: Cache) -> CacheGauge {
        CacheGauge {
            gauge: self.cache_entries.with_label_values(&[cache.as_str()]),
            reported: 0,
        }
    }

    pub fn stage(&self, name: &str) -> StageMetrics {
        StageMetrics {
            queued: (name != "source").then(|| self.stage_queue_depth.with_label_values(&[name])),
            records: self.stage_records.with_label_values(&[name]),
        }
    }

    /// Drop the lag series of every partition not in `owned`.
    pub fn forget_lag_except(&self, owned: impl Iterator<Item = i32>) {
        use prometheus::core::Collector;
        let owned: Vec<String> = owned.map(|p| p.to_string()).collect();
        let stale: Vec<String> = self
            .consumer_lag
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .flat_map(|metric| metric.get_label())
            .filter(|l| l.name() == "partition" && !owned.iter().any(|p| p == l.value()))
            .map(|l| l.value().to_string())
            .collect();
        for p in stale {
            let _ = self.consumer_lag.remove_label_values(&[&p]);
        }
    }

    /// Record the pool's state; called before each scrape.
    pub fn observe_pool(&self, max: usize, open: usize, idle: usize, waiting: usize) {
        for (state, n) in [
            ("max", max),
            ("open", open),
            ("idle", idle),
            ("waiting", waiting),
        ] {
            self.db_pool_connections
                .with_label_values(&[state])
                .set(n as i64);
        }
    }

    /// The text exposition of every registered metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
