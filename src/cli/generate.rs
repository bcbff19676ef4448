//! `cdrflow generate`: synthetic CDRs to Kafka (keyed by subscriber) or to a JSONL file,
//! with a report of exactly what was sent, for reconciliation.

use crate::generator::{
    AnomalyRates, GeneratedRecord, Generator, GeneratorConfig, GeneratorReport, PartitionDelivery,
};
use crate::kafka::{client, KafkaSettings};
use crate::storage;
use anyhow::{bail, Context as _};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub kafka: KafkaSettings,
    #[arg(long, env = "CDRFLOW_TOPIC", default_value = "cdr.raw")]
    pub topic: String,
    /// Records to produce (duplicates included).
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Records per second; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Same seed, same records.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Size of the subscriber pool.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub customers: u64,
    /// Also write the pool's customers to this database (created and migrated if needed).
    #[arg(long, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Write JSON lines to this file instead of Kafka.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Write the report of what was sent as JSON to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// First day of traffic (YYYY-MM-DD or RFC 3339); default: the first day of last month.
    #[arg(long)]
    pub start: Option<String>,
    /// Days of traffic; default: up to the start of the current month.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: Option<u32>,
    /// Zone in which most timestamps are written (as local wall-clock time).
    #[arg(long, env = "CDRFLOW_TIMEZONE", default_value = "Africa/Casablanca")]
    pub timezone: chrono_tz::Tz,
    /// Partitions of the topic if it has to be created.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub partitions: i32,
    #[arg(long, default_value_t = 0.05)]
    pub missing_field_rate: f64,
    #[arg(long, default_value_t = 0.03)]
    pub corrupted_value_rate: f64,
    #[arg(long, default_value_t = 0.01)]
    pub unknown_type_rate: f64,
    #[arg(long, default_value_t = 0.02)]
    pub duplicate_rate: f64,
    #[arg(long, default_value_t = 0.10)]
    pub out_of_order_rate: f64,
    #[arg(long, default_value_t = 0.005)]
    pub malformed_number_rate: f64,
    #[arg(long, default_value_t = 0.005)]
    pub bad_timestamp_rate: f64,
    #[arg(long, default_value_t = 0.003)]
    pub non_json_rate: f64,
    #[arg(long, default_value_t = 0.005)]
    pub unknown_subscriber_rate: f64,
}

impl GenerateArgs {
    fn window(&self, now: DateTime<Utc>) -> anyhow::Result<(DateTime<Utc>, Duration)> {
        let this_month = Utc
            .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
            .single()
            .context("the current month has no first day")?;
        let start = match &self.start {
            Some(text) => DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| {
                    NaiveDate::parse_from_str(text, "%Y-%m-%d")
                        .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
                })
                .map_err(|_| {
                    anyhow::anyhow!("--start `{text}` is neither YYYY-MM-DD nor RFC 3339")
                })?,
            None => {
                let last = this_month - Duration::days(1);
                Utc.with_ymd_and_hms(last.year(), last.month(), 1, 0, 0, 0)
                    .single()
                    .context("last month has no first day")?
            }
        };
        let span = match self.days {
            Some(d) => Duration::days(d as i64),
            None if start < this_month => this_month - start,
            None => bail!("--start is in the current month or later: give --days as well"),
        };
        Ok((start, span))
    }
}

/// Counts what the broker acknowledged, per partition and in all (`acked`, shared with
/// whoever shows progress).
struct DeliveryCounter {
    acked: Arc<AtomicU64>,
    partitions: Mutex<BTreeMap<i32, PartitionDelivery>>,
    failed: AtomicU64,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let mut parts = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
                let d = parts.entry(m.partition()).or_default();
                d.records += 1;
                d.end_offset = d.end_offset.max(m.offset() + 1);
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(%error, "Failed to deliver a generated record.");
                }
            }
        }
    }
}

pub async fn run(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let (start, span) = args.window(now)?;
    let rates = AnomalyRates {
        missing_field: args.missing_field_rate,
        corrupted_value: args.corrupted_value_rate,
        unknown_type: args.unknown_type_rate,
        duplicate: args.duplicate_rate,
        out_of_order: args.out_of_order_rate,
        malformed_number: args.malformed_number_rate,
        bad_timestamp: args.bad_timestamp_rate,
        non_json: args.non_json_rate,
        unknown_subscriber: args.unknown_subscriber_rate,
    };
    let generator = Generator::new(GeneratorConfig {
        seed: args.seed,
        count: args.count,
        customers: args.customers as usize,
        start,
        span,
        timezone: args.timezone,
        now,
        rates,
    })
    .map_err(anyhow::Error::msg)?;

    if let Some(url) = &args.database_url {
        storage::migrate(url)
            .await
            .context("Failed to prepare the database for customers")?;
        let client = storage::connect(url).await?;
        let done = storage::customers::upsert(
            &client,
            generator.customers(),
            storage::customers::OnExisting::Keep,
        )
        .await?;
        eprintln!(
            "customers: {} in the pool, {} new in the database",
            generator.customers().len(),
            done.added
        );
    }

    let started = Instant::now();
    let mut report = GeneratorReport {
        seed: args.seed,
        ..Default::default()
    };
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("Failed to create {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            for (i, r) in generator.enumerate() {
                pace(args.rate, i as u64, started);
                out.write_all(&r.payload)?;
                out.write_all(b"\n")?;
                report.record(&r);
            }
            out.flush()?;
        }
        None => {
            client::ensure_topics(&args.kafka, &[&args.topic], args.partitions)
                .await
                .with_context(|| {
                    format!(
                        "Failed to reach the broker at {} to create {}",
                        args.kafka.brokers, args.topic
                    )
                })?;
            produce(
                &args.kafka,
                &args.topic,
                generator,
                args.rate,
                Arc::new(AtomicU64::new(0)),
                &mut report,
            )?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "sent {} records in {:.1} s ({:.0} records/s), window {} + {} days",
        report.sent,
        secs,
        report.sent as f64 / secs.max(1e-9),
        start.format("%Y-%m-%d"),
        span.num_days()
    );
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("Failed to write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Produce `records` to `topic`, keyed by subscriber, at `rate` records/s at most (0: as
/// fast as the broker takes them), counting each acknowledged record in `acked`. Fills
/// `report` with what was sent and what the broker acknowledged per partition; fails if
/// any record was not delivered. Blocking: run it on a thread of its own.
pub fn produce(
    kafka: &KafkaSettings,
    topic: &str,
    records: impl Iterator<Item = GeneratedRecord>,
    rate: u64,
    acked: Arc<AtomicU64>,
    report: &mut GeneratorReport,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut config = client::base_config(kafka);
    config
        .set("linger.ms", "10")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("acks", "all")
        .set("message.timeout.ms", "120000");
    let producer: ThreadedProducer<DeliveryCounter> = config
        .create_with_context(DeliveryCounter {
            acked,
            partitions: Mutex::default(),
            failed: AtomicU64::new(0),
        })
        .context("Failed to create the Kafka producer")?;
    for (i, r) in records.enumerate() {
        pace(rate, i as u64, started);
        let mut record = BaseRecord::to(topic)
            .key(r.key.as_bytes())
            .payload(&r.payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    back,
                )) => {
                    record = back;
                    std::thread::sleep(StdDuration::from_millis(1));
                }
                Err((error, _)) => return Err(error).context("Failed to produce"),
            }
        }
        report.record(&r);
    }
    producer
        .flush(StdDuration::from_secs(120))
        .context("Failed to flush the producer: is the broker still up?")?;
    let ctx = producer.context();
    report.partitions = ctx
        .partitions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} record(s) were not delivered to {topic}");
    }
    Ok(())
}

/// Sleep so that record `i` goes out no earlier than `i / rate` seconds after the start.
fn pace(rate: u64, i: u64, started: Instant) {
    if rate == 0 {
        return;
    }
    let due = StdDuration::from_secs_f64(i as f64 / rate as f64);
    let elapsed = started.elapsed();
    if due > elapsed + StdDuration::from_millis(1) {
        std::thread::sleep(due - elapsed);
    }
}
