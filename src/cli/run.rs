//! `cdrflow run`: the daemon.

use super::DatabaseArgs;
use crate::domain::{NumberPlan, Validation};
use crate::kafka::KafkaSettings;
use crate::pipeline::{self, RunSettings, SourceSettings};
use crate::telemetry::Metrics;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// An output topic of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Normalized,
    Rejected,
    Alerts,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// Topic of raw CDRs.
    #[arg(long, env = "CDRFLOW_TOPIC", default_value = "cdr.raw")]
    pub topic: String,
    /// Consumer group; instances in one group share the partitions.
    #[arg(long, env = "CDRFLOW_GROUP", default_value = "cdrflow")]
    pub group: String,
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Address of the HTTP endpoints: the API, the dashboard, and /metrics, /healthz,
    /// /readyz unless --metrics-http moves them. Any address other than a loopback one
    /// needs --api-token (or --insecure-no-auth).
    #[arg(long, env = "CDRFLOW_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Address of a listener of their own for /metrics, /healthz and /readyz (which need
    /// no token); they are then not served on --http.
    #[arg(long, env = "CDRFLOW_METRICS_HTTP", value_name = "ADDR")]
    pub metrics_http: Option<SocketAddr>,
    /// Bearer token every /api request must carry (`Authorization: Bearer TOKEN`); the
    /// dashboard asks for it. Prefer CDRFLOW_API_TOKEN or a file (api_token_file): a flag
    /// shows in the process list.
    #[arg(
        long,
        env = "CDRFLOW_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub api_token: Option<String>,
    /// Serve the API on a non-loopback --http address without --api-token: anyone who
    /// reaches it reads every customer's data.
    #[arg(long, env = "CDRFLOW_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Postgres connections of the API's own pool (the pipeline's are never lent to it).
    #[arg(long, env = "CDRFLOW_API_POOL_SIZE", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub api_pool_size: u32,
    /// Milliseconds after which Postgres cancels an API statement (the request gets 503).
    #[arg(long, env = "CDRFLOW_API_STATEMENT_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub api_statement_timeout_ms: u64,
    /// API requests served at once; more get 429 with Retry-After at once.
    #[arg(long, env = "CDRFLOW_API_MAX_CONCURRENT", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub api_max_concurrent: u32,
    /// Stop once no record arrived for SECS and all work is committed (tests, demos, benchmarks).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub exit_when_idle: Option<u64>,
    /// Records per batch at most (one Postgres transaction each).
    #[arg(long, env = "CDRFLOW_BATCH_SIZE", default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Milliseconds a partial batch waits for more records.
    #[arg(long, env = "CDRFLOW_BATCH_LINGER_MS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_linger_ms: u64,
    /// Megabytes of memory the daemon sizes its bounds from: 12/64 go to batches in
    /// flight (by bytes), the rest to librdkafka's prefetch queue, each cache and what
    /// no setting sizes.
    #[arg(long, env = "CDRFLOW_MEMORY_MB", default_value_t = crate::pipeline::memory::DEFAULT_MEGABYTES,
          value_parser = clap::value_parser!(u32).range(crate::pipeline::memory::MIN_MEGABYTES as i64..=1_048_576))]
    pub memory_mb: u32,
    /// Batches in flight at most, whatever they weigh; beyond it (or beyond the bytes
    /// `--memory-mb` allows) the source pauses its partitions, and each partition has at
    /// most its share of them in flight. Partial batches are cut after the linger only
    /// while fewer than 8 are in flight.
    #[arg(long, env = "CDRFLOW_MAX_INFLIGHT", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub max_inflight: u32,
    /// Do not publish to the normalized, rejected and alerts topics.
    #[arg(long, env = "CDRFLOW_NO_PUBLISH")]
    pub no_publish: bool,
    /// The outputs published to Kafka, comma-separated: normalized (every accepted event,
    /// canonical), rejected (every reject with its reason), alerts (credit-limit alerts).
    /// Postgres holds all of them either way.
    #[arg(
        long,
        env = "CDRFLOW_PUBLISH",
        value_enum,
        value_delimiter = ',',
        default_values_t = [Output::Normalized, Output::Rejected, Output::Alerts],
        conflicts_with = "no_publish"
    )]
    pub publish: Vec<Output>,
    #[arg(
        long,
        env = "CDRFLOW_NORMALIZED_TOPIC",
        default_value = "cdr.normalized"
    )]
    pub normalized_topic: String,
    #[arg(long, env = "CDRFLOW_REJECTED_TOPIC", default_value = "cdr.rejected")]
    pub rejected_topic: String,
    /// Partitions of topics cdrflow has to create.
    #[arg(long, env = "CDRFLOW_PARTITIONS", default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub partitions: i32,
    /// Region whose national numbers subscribers write (ISO 3166 alpha-2).
    #[arg(long, env = "CDRFLOW_DEFAULT_REGION", default_value = "MA")]
    pub default_region: String,
    /// The operator's IANA time zone; timestamps without offset are read in it.
    #[arg(long, env = "CDRFLOW_TIMEZONE", default_value = "Africa/Casablanca")]
    pub timezone: chrono_tz::Tz,
    /// Payloads larger than this are rejected unread.
    #[arg(long, env = "CDRFLOW_MAX_PAYLOAD_BYTES", default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(256..))]
    pub max_payload_bytes: u32,
    /// How far ahead of now a timestamp may be.
    #[arg(long, env = "CDRFLOW_MAX_CLOCK_SKEW_HOURS", default_value_t = 24)]
    pub max_clock_skew_hours: u32,
    /// How many days older than its arrival on the broker a record may be; older ones are
    /// rejected as too_old (a switch after a clock reset).
    #[arg(long, env = "CDRFLOW_MAX_EVENT_AGE_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub max_event_age_days: u32,
    /// Kafka group session timeout: how long the partitions of a crashed instance wait
    /// before another member takes them over.
    #[arg(long, env = "CDRFLOW_KAFKA_SESSION_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1000..=300_000))]
    pub kafka_session_timeout_ms: u32,
    /// Committers writing to Postgres side by side (each owns partition mod n).
    #[arg(long, env = "CDRFLOW_COMMITTERS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub committers: u32,
    /// Seconds between looks for a newer catalog version (`catalog apply`); a rerate
    /// replay does not wait for it.
    #[arg(long, env = "CDRFLOW_CATALOG_CHECK_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub catalog_check_secs: u64,
    /// Seconds between checks of suspense for records whose subscriber now exists.
    #[arg(long, env = "CDRFLOW_SUSPENSE_INTERVAL_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub suspense_interval_secs: u64,
    /// Billing accumulator shards (customers are spread by id).
    #[arg(long, env = "CDRFLOW_ACCUMULATORS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub accumulators: u32,
    /// Minutes after which such a customer month, unseen, is forgotten.
    #[arg(long, env = "CDRFLOW_ACCUMULATOR_IDLE_MINUTES", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub accumulator_idle_minutes: u64,
    #[arg(long, env = "CDRFLOW_ALERTS_TOPIC", default_value = "cdr.alerts")]
    pub alerts_topic: String,
    /// Close and invoice a billing period automatically this many days after it ended
    /// (operator time). Off unless given.
    #[arg(long, env = "CDRFLOW_CLOSE_AFTER_DAYS", value_parser = clap::value_parser!(u32).range(0..=365))]
    pub close_after_days: Option<u32>,
    /// Seconds between refreshes of the report aggregates (docs/reports.md), at least 4
    /// times the last refresh's duration; 0: never (refresh with `cdrflow report
    /// --refresh`). Also refreshed after invoicing.
    #[arg(long, env = "CDRFLOW_REPORT_REFRESH_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub report_refresh_secs: u64,
    /// Postgres connections in the daemon's pool.
    #[arg(long, env = "CDRFLOW_DB_POOL_SIZE", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub db_pool_size: u32,
}

impl RunArgs {
    fn publishes(&self, output: Output) -> bool {
        !self.no_publish && self.publish.contains(&output)
    }

    pub fn settings(self) -> anyhow::Result<RunSettings> {
        let normalized = self.publishes(Output::Normalized);
        let rejected = self.publishes(Output::Rejected);
        let alerts = self.publishes(Output::Alerts);
        NumberPlan::new(&self.default_region)
            .map_err(|e| anyhow::anyhow!("--default-region: {e}"))?;
        crate::storage::parse_url(&self.db.database_url)
            .map_err(|e| anyhow::anyhow!("--database-url: {e}"))?;
        if self.alerts_topic.trim().is_empty() {
            anyhow::bail!("--alerts-topic must not be empty");
        }
        if self.topic.trim().is_empty() {
            anyhow::bail!("--topic must not be empty");
        }
        let memory = crate::pipeline::memory::MemoryBudget::new(
            self.memory_mb,
            self.committers as usize,
            self.accumulators as usize,
        );
        Ok(RunSettings {
            memory,
            source: SourceSettings {
                kafka: self.kafka,
                topic: self.topic,
                group: self.group,
                database_url: self.db.database_url,
                batch_size: self.batch_size as usize,
                linger: Duration::from_millis(self.batch_linger_ms),
                max_inflight: self.max_inflight as usize,
                max_inflight_bytes: memory.inflight_bytes,
                prefetch_kbytes: memory.prefetch_kbytes,
                exit_when_idle: self.exit_when_idle.map(Duration::from_secs),
                session_timeout_ms: self.kafka_session_timeout_ms,
            },
            http: crate::http::Settings::new(
                self.http,
                self.metrics_http,
                self.api_token.as_deref(),
                self.insecure_no_auth,
                self.api_pool_size as usize,
                Duration::from_millis(self.api_statement_timeout_ms),
                self.api_max_concurrent as usize,
            )?,
            normalized_topic: normalized.then_some(self.normalized_topic),
            rejected_topic: rejected.then_some(self.rejected_topic),
            topic_partitions: self.partitions,
            validation: Validation {
                max_payload_bytes: self.max_payload_bytes as usize,
                max_clock_skew: chrono::Duration::hours(self.max_clock_skew_hours as i64),
                max_event_age: chrono::Duration::days(self.max_event_age_days as i64),
                timezone: self.timezone,
            },
            numbering_region: self.default_region,
            // A connection per committer and accumulator, plus the rater, the suspense
            // resolver, the biller, the report refresher and /readyz (the API has its own).
            db_pool_size: (self.db_pool_size as usize)
                .max(self.committers as usize + self.accumulators as usize + 5),
            accumulators: self.accumulators as usize,
            accumulator: crate::pipeline::accumulator::AccumulatorSettings {
                max_customers: memory.settled_per_shard,
                idle: Duration::from_secs(self.accumulator_idle_minutes * 60),
                alerts_topic: alerts.then(|| self.alerts_topic.clone()),
                shard: (0, 1),
            },
            close_after_days: self.close_after_days,
            report_refresh: (self.report_refresh_secs > 0)
                .then(|| Duration::from_secs(self.report_refresh_secs)),
            committers: self.committers as usize,
            suspense_interval: Duration::from_secs(self.suspense_interval_secs),
            catalog_check: Duration::from_secs(self.catalog_check_secs),
        })
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let settings = match args.settings() {
        Ok(s) => s,
        Err(e) => match e.downcast_ref::<crate::http::SettingsError>() {
            // The same status as any other bad setting.
            Some(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(2));
            }
            None => return Err(e),
        },
    };
    let metrics = Metrics::new(crate::telemetry::metrics::Registry::new())?;
    match pipeline::run(settings, metrics).await? {
        pipeline::SourceExit::Held => {
            eprintln!(
                "Error: partitions are held: their stored offset is past the broker's log end \
                 (the log shows which, and `cdrflow replay` resumes them)"
            );
            Ok(ExitCode::FAILURE)
        }
        pipeline::SourceExit::Idle | pipeline::SourceExit::Shutdown => Ok(ExitCode::SUCCESS),
    }
}
