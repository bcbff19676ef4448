//! The machine's limits for `scripts/bench.sh`, measured on the same records cdrflow
//! processes: a bare consumer (read the topic, nothing else) and a bare bulk insert (the
//! same usage rows, the same statement, the same batch size, one transaction a batch).
//! And what the daemon's bounded structures cost per entry (`memory`), which
//! `pipeline::memory` sizes them with.

mod memory_cost;

use anyhow::Context;
use cdrflow::domain::batch::{rate_record, PartitionBatch, ProcessedRecord, SourceMeta};

use cdrflow::domain::{Normalizer, NumberPlan, Validation};
use cdrflow::generator::{AnomalyRates, Generator, GeneratorConfig};
use cdrflow::pipeline::memory::{self, MemoryBudget};
use cdrflow::storage;
use chrono::{Duration, TimeZone, Utc};
use clap::{Parser, Subcommand};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use std::time::Instant;

/// Rating needs a catalog; an empty benchmark database gets the shipped one.
const DEFAULT_CATALOG: &str = include_str!("../../../catalog/default.toml");

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Read `count` records from the start of a topic; print records/s.
    Consume {
        /// The brokers and how to reach them, as for `cdrflow run`.
        #[command(flatten)]
        kafka: cdrflow::kafka::KafkaSettings,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        count: u64,
    },
    /// Insert the accepted usage rows of a generated stream; print rows/s.
    Insert(InsertArgs),
    /// Fill each bounded structure of the daemon as it fills it and print the bytes it
    /// allocated per entry, beside the figure `pipeline::memory` sizes it with.
    Memory,
}

#[derive(clap::Args)]
struct InsertArgs {
    #[arg(long)]
    database_url: String,
    #[arg(long)]
    count: u64,
    #[arg(long)]
    seed: u64,
    #[arg(long)]
    customers: usize,
    #[arg(long, default_value_t = 5000)]
    batch_size: usize,
    /// First day of the generated traffic, as given to `cdrflow generate`.
    #[arg(long)]
    start: String,
    #[arg(long)]
    days: i64,
    /// Connections inserting side by side, as many as the daemon's committers.
    #[arg(long, default_value_t = 1)]
    connections: usize,
}

fn main() -> anyhow::Result<()> {
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    match Cli::parse().command {
        Cmd::Consume {
            kafka,
            topic,
            count,
        } => rt()?.block_on(consume(&kafka, &topic, count)),
        Cmd::Insert(args) => rt()?.block_on(insert(args)),
        Cmd::Memory => memory_cost::print(),
    }
}

async fn consume(
    kafka: &cdrflow::kafka::KafkaSettings,
    topic: &str,
    count: u64,
) -> anyhow::Result<()> {
    let consumer: StreamConsumer = cdrflow::kafka::client::consumer_config(
        kafka,
        &format!("bench-bare-{}", std::process::id()),
        10_000,
        // The same prefetch as a daemon with the default memory budget.
        MemoryBudget::new(memory::DEFAULT_MEGABYTES, 2, 2).prefetch_kbytes,
    )
    .create()?;
    consumer.subscribe(&[topic])?;
    let mut n = 0u64;
    let mut bytes = 0usize;
    let mut first: Option<Instant> = None;
    while n < count {
        let m = consumer.recv().await?;
        first.get_or_insert_with(Instant::now);
        bytes += m.payload().map_or(0, <[u8]>::len);
        n += 1;
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    println!("{{\"records\": {n}, \"seconds\": {secs:.3}, \"records_per_sec\": {:.0}, \"bytes\": {bytes}}}", n as f64 / secs.max(1e-9));
    Ok(())
}

async fn insert(args: InsertArgs) -> anyhow::Result<()> {
    let InsertArgs {
        database_url,
        count,
        seed,
        customers,
        batch_size,
        start,
        days,
        connections,
    } = args;
    let url = database_url.as_str();
    let connections = connections.max(1);
    let start =
        chrono::NaiveDate::parse_from_str(&start, "%Y-%m-%d").context("--start YYYY-MM-DD")?;
    let start = Utc.from_utc_datetime(&start.and_hms_opt(0, 0, 0).context("midnight")?);
    let generator = Generator::new(GeneratorConfig {
        seed,
        count,
        customers,
        start,
        span: Duration::days(days),
        timezone: chrono_tz::Africa::Casablanca,
        now: Utc::now(),
        rates: AnomalyRates::default(),
    })
    .map_err(anyhow::Error::msg)?;
    storage::migrate(url).await?;
    let mut client = storage::connect(url).await?;
    storage::customers::upsert(
        &client,
        generator.customers(),
        storage::customers::OnExisting::Keep,
    )
    .await?;
    let known = storage::customers::all_subscribers(&client, i64::MAX)
        .await?
        .context("customers")?;
    if storage::catalog::active_version(&client).await?.is_none() {
        storage::catalog::apply(&mut client, DEFAULT_CATALOG).await?;
    }
    let catalog = storage::catalog::load(&client, None)
        .await?
        .context("no catalog")?;

    // Mediation happens before the clock starts: only the insert is measured.
    // The traffic is dated September 2026 whatever the day the benchmark runs.
    let validation = Validation {
        max_event_age: chrono::Duration::days(36_500),
        ..Validation::default()
    };
    let mut normalizer = Normalizer::new(NumberPlan::new("MA").map_err(anyhow::Error::msg)?);
    let now = Utc::now();
    let mut seen = std::collections::HashSet::new();
    let mut records = Vec::new();
    for (offset, r) in generator.enumerate() {
        if let Ok(n) = validation
            .validate(&r.payload, now)
            .map_err(|_| ())
            .and_then(|v| normalizer.normalize(v).map_err(|_| ()))
        {
            if known.contains_key(n.subscriber.as_str()) && seen.insert(n.record_id.clone()) {
                records.push(ProcessedRecord {
                    source: SourceMeta {
                        offset: offset as i64,
                        key: None,
                        payload: Vec::new(),
                        timestamp: Some(now),
                    },
                    verdict: rate_record(
                        &catalog.catalog,
                        catalog.version,
                        known.get(n.subscriber.as_str()),
                        n,
                    ),
                });
            }
        }
    }
    let rows = records.len();
    // Deal the batches out to the connections like partitions to committers.
    let mut lanes: Vec<Vec<PartitionBatch>> = (0..connections).map(|_| Vec::new()).collect();
    let mut records = records.into_iter();
    for i in 0.. {
        let batch: Vec<ProcessedRecord> = records.by_ref().take(batch_size).collect();
        if batch.is_empty() {
            break;
        }
        lanes[i % connections].push(PartitionBatch {
            topic: "bench".into(),
            partition: 0,
            from_offset: 0,
            to_offset: 0,
            records: batch,
        });
    }
    let pool = storage::pool(url, connections)?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for lane in lanes {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for batch in lane {
                let mut client = pool.get().await?;
                let tx = client.transaction().await?;
                storage::batch::insert_accepted(&tx, &batch).await?;
                tx.commit().await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"rows\": {rows}, \"seconds\": {secs:.3}, \"rows_per_sec\": {:.0}}}",
        rows as f64 / secs.max(1e-9)
    );
    Ok(())
}
