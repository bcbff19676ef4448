//! `cdrflow demo`: the whole job end to end, in this one process, calling the same library
//! code as the other subcommands: migrate, apply the shipped catalog, create customers,
//! send last month's CDRs (with the default anomaly mix) to Kafka, run the daemon until
//! the topic is drained, rate the suspense of unknown subscribers, bill the month, and
//! print what a billing manager asks first: did every record arrive exactly once, what is
//! the month worth, who was invoiced for how much, and where to look next. Progress goes
//! to stderr, the summary to stdout and to `OUT/summary.txt` and `OUT/summary.json`.
//!
//! Re-runs: each run sends to a topic of its own (`cdr.demo.<unix time>`), so a broker
//! that outlives a run never feeds the next one an earlier run's records. The database
//! must not have processed records yet: the same seed makes the same records, which a
//! second run would count as duplicates, and the month would be billed already. So a
//! used database is refused, and `--fresh` (which `scripts/demo.sh` passes) drops and
//! recreates it first — only a database whose name contains `demo`, as a guard against
//! pointing it at a real one.

use super::run::RunArgs;
use super::DatabaseArgs;
use crate::domain::billing::Invoice;
use crate::domain::generator::{
    customer_pool_on, AnomalyRates, Customer, ExpectedOutcomes, Generator, GeneratorConfig,
    GeneratorReport, PartitionDelivery,
};
use crate::kafka::client;
use crate::pipeline::{self, RunSettings, SourceExit};
use crate::render::pdf::invoice_pdf;
use crate::storage::{self, catalog::Applied, customers::OnExisting, invoices, stats};
use crate::telemetry::metrics::Registry;
use crate::telemetry::Metrics;
use anyhow::{bail, Context as _};
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use clap::Parser as _;
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

/// The catalog the demo applies unless `--catalog` names another: built in, so the
/// binary runs the demo from any folder.
const DEFAULT_CATALOG: &str = include_str!("../../catalog/default.toml");
/// Partitions of the demo topic: enough for both committers and a visible spread.
const PARTITIONS: i32 = 6;
/// Seconds without a record after which the daemon counts the topic as drained.
const IDLE_SECS: u64 = 3;
/// How long the broker may take to answer the first request before the demo gives up.
const BROKER_PATIENCE: StdDuration = StdDuration::from_secs(20);
const STEPS: usize = 8;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "CDRFLOW_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// CDRs to send (duplicates and anomalies included).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub records: u64,
    /// Customers to create; the traffic comes from them (and a few unknown subscribers).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub customers: u64,
    /// Same seed, same customers and records.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Folder for the summary, the generator's report and the invoices (its `invoices/`
    /// folder is replaced).
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// Topic the CDRs go through; by default a new `cdr.demo.<unix time>` each run.
    #[arg(long)]
    pub topic: Option<String>,
    /// Catalog file to apply; by default the shipped catalog/default.toml (built in).
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Drop and recreate the database first (only one whose name contains `demo`).
    #[arg(long)]
    pub fresh: bool,
    /// Address of the daemon's HTTP endpoints (/metrics, /api/...).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// After the summary, keep the daemon and its HTTP endpoints running until Ctrl-C.
    #[arg(long)]
    pub serve: bool,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // Before the daemon starts, Ctrl-C would kill the process anyway; after it has run,
    // its signal handlers stay installed, so without this a Ctrl-C during billing would
    // be swallowed. Committed work stays committed either way.
    let done = tokio::select! {
        done = demo(&args) => done?,
        _ = interrupted() => {
            eprintln!("\nInterrupted; everything committed so far stays committed.");
            return Ok(ExitCode::from(130));
        }
    };
    if args.serve {
        eprintln!(
            "[serve] The daemon keeps running: http://{}/metrics and http://{}/api/invoices (Ctrl-C to stop).",
            args.http, args.http
        );
        let settings = daemon_settings(&args, &done.topic, done.timezone, None)?;
        pipeline::run(settings, done.metrics).await?;
    }
    Ok(if done.reconciled {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What the demo leaves for `--serve`.
struct Done {
    reconciled: bool,
    topic: String,
    timezone: Tz,
    metrics: Metrics,
}

async fn demo(args: &DemoArgs) -> anyhow::Result<Done> {
    let mut steps = Steps::new();
    let url = &args.db.database_url;
    let shown_db = redacted(url)?;
    let topic = match &args.topic {
        Some(t) if t.trim().is_empty() => bail!("--topic must not be empty"),
        Some(t) => t.clone(),
        None => format!("cdr.demo.{}", Utc::now().timestamp()),
    };

    // 1. Everything outside the process answers, before any work is done.
    steps.begin(
        "migrate",
        format!(
            "Preparing PostgreSQL ({shown_db}) and the broker ({})",
            args.brokers
        ),
    );
    std::net::TcpListener::bind(args.http).with_context(|| {
        format!(
            "Failed to listen on {} for the daemon's endpoints: pass another --http",
            args.http
        )
    })?;
    if args.fresh {
        drop_database(url, &shown_db).await?;
    }
    let applied = storage::migrate(url)
        .await
        .with_context(|| format!("Failed to reach and migrate PostgreSQL at {shown_db}"))?;
    let client = storage::connect(url)
        .await
        .with_context(|| format!("Failed to connect to PostgreSQL at {shown_db}"))?;
    let used: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pipeline_counters) OR EXISTS (SELECT 1 FROM invoices)",
            &[],
        )
        .await?
        .get(0);
    if used {
        bail!(
            "{shown_db} has processed records or issued invoices already: this run's records would be duplicates of the last run's and its month billed already. Pass --fresh to drop and recreate it, or point --database-url at an empty database"
        );
    }
    match tokio::time::timeout(
        BROKER_PATIENCE,
        client::ensure_topics(&args.brokers, &[&topic], PARTITIONS),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => bail!(
            "Failed to reach the Kafka broker at {} to create {topic} (is it running? --brokers): {e}",
            args.brokers
        ),
        Err(_) => bail!(
            "The Kafka broker at {} did not answer within {} s: is it running (--brokers)?",
            args.brokers,
            BROKER_PATIENCE.as_secs()
        ),
    }
    steps.done(format!(
        "schema up to date ({applied} migration(s) applied), topic {topic} ready"
    ));

    // 2. The catalog.
    let (catalog_text, catalog_name) = match &args.catalog {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("Failed to read {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            DEFAULT_CATALOG.to_string(),
            "catalog/default.toml (built in)".to_string(),
        ),
    };
    steps.begin("catalog", format!("Applying the catalog {catalog_name}"));
    let mut client = client;
    let applied = storage::catalog::apply(&mut client, &catalog_text)
        .await
        .map_err(|e| anyhow::anyhow!("{catalog_name}: {e}"))?;
    let catalog = storage::catalog::load(&client, None)
        .await?
        .context("the catalog just applied is not there")?;
    let op = &catalog.catalog.operator;
    let tz = op.timezone;
    steps.done(match applied {
        Applied::New { version } => format!("stored as version {version}: {}", catalog.label),
        Applied::Unchanged { version } => {
            format!("already the active version {version}: {}", catalog.label)
        }
    });

    // 3. Customers, on the catalog's plans; the generator draws the same numbers.
    steps.begin(
        "customers",
        format!(
            "Creating {} customers on the catalog's plans (seed {})",
            count(args.customers),
            args.seed
        ),
    );
    let plans: Vec<&str> = catalog.catalog.plans.keys().map(String::as_str).collect();
    let pool = customer_pool_on(args.seed, args.customers as usize, &plans);
    let upserted = storage::customers::upsert(&client, &pool, OnExisting::Keep).await?;
    steps.done(format!("{} new in the database", count(upserted.added)));

    // 4. A month of traffic to Kafka.
    let now = Utc::now();
    let period = last_full_month(tz, now)?;
    let next = period
        .checked_add_months(Months::new(1))
        .context("the month after the period does not exist")?;
    let (start, end) = (local_midnight(tz, period), local_midnight(tz, next));
    let month = period.format("%B %Y").to_string();
    steps.begin(
        "generate",
        format!(
            "Sending {} CDRs of {month} ({tz}) with anomalies to {topic}",
            count(args.records)
        ),
    );
    let generator = Generator::new(GeneratorConfig {
        seed: args.seed,
        count: args.records,
        customers: args.customers as usize,
        start,
        span: end - start,
        timezone: tz,
        now,
        rates: AnomalyRates::default(),
    })
    .map_err(anyhow::Error::msg)?;
    let acked = Arc::new(AtomicU64::new(0));
    let sending = tokio::task::spawn_blocking({
        let (brokers, topic, acked, seed) = (
            args.brokers.clone(),
            topic.clone(),
            acked.clone(),
            args.seed,
        );
        move || send(&brokers, &topic, generator, seed, acked)
    });
    tokio::pin!(sending);
    let mut tick = tokio::time::interval(StdDuration::from_secs(1));
    let report = loop {
        tokio::select! {
            r = &mut sending => break r.context("the generator thread failed")??,
            _ = tick.tick() => {
                let n = acked.load(Ordering::Relaxed);
                steps.progress(format!("{} of {} acknowledged by the broker", count(n), count(args.records)));
            }
        }
    };
    let generate_secs = steps.done(format!(
        "{} records acknowledged ({} expected accepted, {} duplicates, {} suspense, {} rejected)",
        count(report.sent),
        count(report.expected.accepted),
        count(report.expected.duplicates),
        count(report.expected.suspense),
        count(report.expected.rejected.values().sum::<u64>())
    ));
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("Failed to create {}", args.out.display()))?;
    let report_path = args.out.join("generator-report.json");
    std::fs::write(&report_path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("Failed to write {}", report_path.display()))?;

    // 5. The daemon, until the topic is drained.
    steps.begin(
        "daemon",
        format!(
            "Running the daemon until {topic} is drained (metrics on http://{}/metrics)",
            args.http
        ),
    );
    let settings = daemon_settings(args, &topic, tz, Some(IDLE_SECS))?;
    let group = settings.source.group.clone();
    let metrics = Metrics::new(Registry::new())?;
    let daemon_started = Utc::now();
    let daemon = pipeline::run(settings, metrics.clone());
    tokio::pin!(daemon);
    let mut tick = tokio::time::interval(StdDuration::from_secs(1));
    let since = Instant::now();
    let exit = loop {
        tokio::select! {
            r = &mut daemon => break r?,
            _ = tick.tick() => {
                // Batches commit thousands at a time: the average since start-up reads
                // steadier than the last second's count.
                let n = metrics.records_consumed.get();
                let rate = n as f64 / since.elapsed().as_secs_f64().max(1e-3);
                steps.progress(format!(
                    "{} of {} records committed ({} records/s so far)",
                    count(n), count(report.sent), count(rate.round() as u64)
                ));
            }
        }
    };
    if exit == SourceExit::Shutdown {
        bail!("The daemon was stopped by a signal before {topic} was drained");
    }
    steps.done(format!(
        "{} records committed; idle for {IDLE_SECS} s, so drained",
        count(metrics.records_consumed.get())
    ));

    // 6. Suspense: the unknown subscribers become customers before the month closes, or
    // their usage would be missing from this month's invoices.
    steps.begin(
        "suspense",
        "Resolving suspense: unknown subscribers become customers, their records are rated",
    );
    let held = client
        .query(
            "SELECT msisdn, count(*) FROM suspense_records
              WHERE resolved_at IS NULL AND src_topic = $1 GROUP BY msisdn ORDER BY msisdn",
            &[&topic],
        )
        .await?;
    let plan = if catalog.catalog.plans.contains_key("basic") {
        "basic".to_string()
    } else {
        catalog
            .catalog
            .plans
            .keys()
            .next()
            .cloned()
            .context("the catalog has no plans")?
    };
    let newcomers: Vec<Customer> = held
        .iter()
        .enumerate()
        .map(|(i, row)| {
            // Activated on the first day of the month they were seen in.
            Customer::on_plan(
                row.get(0),
                &format!("New customer {}", i + 1),
                &plan,
                period,
            )
        })
        .collect();
    let held_records: i64 = held.iter().map(|r| r.get::<_, i64>(1)).sum();
    let imported = storage::customers::upsert(&client, &newcomers, OnExisting::Keep).await?;
    let pg = storage::pool(url, 2)?;
    let mut pooled = pg.get().await.context("Failed to connect to PostgreSQL")?;
    let resolved = storage::suspense::resolve(&mut pooled, &catalog).await?;
    let still_held: i64 = client
        .query_one(
            "SELECT count(*) FROM suspense_records WHERE resolved_at IS NULL AND src_topic = $1",
            &[&topic],
        )
        .await?
        .get(0);
    steps.done(format!(
        "{} held records of {} subscribers: {} customers added (plan {plan}), {} records rated, {} still held",
        count(held_records),
        count(held.len() as i64),
        count(imported.added),
        count(resolved.rated),
        count(still_held)
    ));

    // 7. The month's invoices.
    let invoices_dir = args.out.join("invoices");
    steps.begin(
        "bill",
        format!(
            "Billing {month}: invoices in Postgres and {} (JSON + PDF)",
            invoices_dir.display()
        ),
    );
    let billed = invoices::bill_period(&mut pooled, &catalog, period, 1000).await?;
    if invoices_dir.exists() {
        std::fs::remove_dir_all(&invoices_dir)
            .with_context(|| format!("Failed to clear {}", invoices_dir.display()))?;
    }
    std::fs::create_dir_all(&invoices_dir)
        .with_context(|| format!("Failed to create {}", invoices_dir.display()))?;
    let written = write_invoices(&client, period, &invoices_dir, &mut steps).await?;
    steps.done(format!(
        "{} invoices issued, {} written as JSON and PDF",
        count(billed.issued),
        count(written)
    ));

    // 8. The summary.
    steps.begin("summary", "Summarizing");
    let s = stats::load(&client, &group).await?;
    let mut processed = stats::Outcomes::default();
    let mut stored_offsets = BTreeMap::new();
    for p in s.partitions.iter().filter(|p| p.topic == topic) {
        add(&mut processed, &p.outcomes);
        stored_offsets.insert(p.partition, p.stored_offset);
    }
    let mismatches = reconcile(&report, &processed, &stored_offsets);
    let mut summary = Summary {
        operator: op.name.clone(),
        currency: op.currency.clone(),
        period: period.format("%Y-%m").to_string(),
        month: month.clone(),
        catalog_version: catalog.version,
        catalog: catalog.label.clone(),
        topic: topic.clone(),
        group: group.clone(),
        seed: args.seed,
        records: Records {
            sent: report.sent,
            expected: report.expected.clone(),
            processed,
        },
        reconciled: mismatches.is_empty(),
        mismatches,
        suspense: Suspense {
            held_records,
            subscribers: held.len() as i64,
            customers_added: imported.added,
            plan,
            rated: resolved.rated,
            already_stored: resolved.duplicates,
            still_held,
        },
        revenue_by_service: Vec::new(),
        revenue_by_region: Vec::new(),
        invoices: InvoiceTotals::default(),
        top_customers: Vec::new(),
        other_months: BTreeMap::new(),
        throughput: Throughput::default(),
        timings: Vec::new(),
        files: Files {
            summary_txt: args.out.join("summary.txt").display().to_string(),
            summary_json: args.out.join("summary.json").display().to_string(),
            generator_report: report_path.display().to_string(),
            invoices_dir: invoices_dir.display().to_string(),
            largest_invoice: None,
        },
        urls: Urls {
            metrics: format!("http://{}/metrics", args.http),
            invoices: format!(
                "http://{}/api/invoices?period={}",
                args.http,
                period.format("%Y-%m")
            ),
            customer_usage: None,
            serving: args.serve,
        },
        explain_example: None,
    };
    load_money(&client, period, &mut summary).await?;
    summary.throughput = throughput(&client, &group, &topic, daemon_started).await?;
    summary.throughput.generator_records_per_sec = report.sent as f64 / generate_secs.max(1e-3);
    if let Some(top) = summary.top_customers.first() {
        summary.files.largest_invoice = Some(
            invoices_dir
                .join(format!("{}.pdf", top.number))
                .display()
                .to_string(),
        );
        summary.urls.customer_usage = Some(format!(
            "http://{}/api/customers/{}/usage?period={}",
            args.http,
            top.customer_id,
            period.format("%Y-%m")
        ));
    }
    summary.explain_example = client
        .query_opt(
            "SELECT record_id FROM usage_events WHERE period = $1 AND cardinality(bands) > 1
              ORDER BY record_id LIMIT 1",
            &[&period],
        )
        .await?
        .map(|r| r.get(0));
    steps.done("done");
    summary.timings = steps.timings.clone();

    let text = render(&summary);
    print!("{text}");
    std::fs::write(&summary.files.summary_txt, &text)
        .with_context(|| format!("Failed to write {}", summary.files.summary_txt))?;
    std::fs::write(
        &summary.files.summary_json,
        serde_json::to_vec_pretty(&summary)?,
    )
    .with_context(|| format!("Failed to write {}", summary.files.summary_json))?;
    Ok(Done {
        reconciled: summary.reconciled,
        topic,
        timezone: tz,
        metrics,
    })
}

/// The daemon's settings exactly as `cdrflow run` makes them from its flags, so the demo
/// runs the daemon users run, with their `CDRFLOW_*` tuning.
fn daemon_settings(
    args: &DemoArgs,
    topic: &str,
    tz: Tz,
    exit_when_idle: Option<u64>,
) -> anyhow::Result<RunSettings> {
    #[derive(clap::Parser)]
    #[command(name = "cdrflow run")]
    struct Daemon {
        #[command(flatten)]
        run: RunArgs,
    }
    let mut argv: Vec<String> = [
        "cdrflow run",
        "--brokers",
        &args.brokers,
        "--topic",
        topic,
        "--database-url",
        &args.db.database_url,
        "--http",
        &args.http.to_string(),
        "--timezone",
        tz.name(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(secs) = exit_when_idle {
        argv.extend(["--exit-when-idle".to_string(), secs.to_string()]);
    }
    let daemon = Daemon::try_parse_from(argv)
        .map_err(|e| anyhow::anyhow!("the daemon's settings (CDRFLOW_* environment): {e}"))?;
    daemon.run.settings()
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The database URL as it may be shown: user, host, port and database, never the password.
fn redacted(url: &str) -> anyhow::Result<String> {
    let c = storage::parse_url(url).map_err(|e| anyhow::anyhow!("--database-url: {e}"))?;
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let user = c.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    Ok(format!(
        "{user}{host}:{port}/{}",
        c.get_dbname().unwrap_or("")
    ))
}

/// `DROP DATABASE … WITH (FORCE)` of the URL's database, which must be a demo's.
async fn drop_database(url: &str, shown: &str) -> anyhow::Result<()> {
    let config = storage::parse_url(url)?;
    let Some(name) = config.get_dbname().map(str::to_string) else {
        bail!("--fresh needs a database name in --database-url");
    };
    if !name.contains("demo") {
        bail!(
            "--fresh drops the database, and {name} does not look like a demo's (its name has no `demo`): refusing. Point --database-url at a demo database, e.g. …/cdrflow_demo"
        );
    }
    let mut admin = config;
    admin
        .dbname("postgres")
        .connect_timeout(StdDuration::from_secs(5));
    let (admin, connection) = admin
        .connect(tokio_postgres::NoTls)
        .await
        .with_context(|| format!("Failed to reach PostgreSQL at {shown}"))?;
    tokio::spawn(connection);
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .await
        .with_context(|| format!("Failed to drop {name}"))?;
    Ok(())
}

/// The last calendar month that has ended in the operator's zone.
fn last_full_month(tz: Tz, now: DateTime<Utc>) -> anyhow::Result<NaiveDate> {
    let today = now.with_timezone(&tz).date_naive();
    let this_month = today - Duration::days(today.day0() as i64);
    this_month
        .checked_sub_months(Months::new(1))
        .context("there is no month before this one")
}

/// The first instant of `day` in `tz`. Midnight itself may be skipped by a DST change
/// in some zones; the day then starts at the first wall-clock time that exists.
fn local_midnight(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    (0..=12)
        .filter_map(|quarter| {
            tz.from_local_datetime(
                &(day.and_time(NaiveTime::MIN) + Duration::minutes(15 * quarter)),
            )
            .earliest()
        })
        .next()
        .map(|t| t.with_timezone(&Utc))
        // No zone skips three hours; UTC midnight as the last resort.
        .unwrap_or_else(|| day.and_time(NaiveTime::MIN).and_utc())
}

/// Counts what the broker acknowledged, per partition, and shares the running count with
/// the progress line.
struct Deliveries {
    acked: Arc<AtomicU64>,
    failed: AtomicU64,
    partitions: Mutex<BTreeMap<i32, PartitionDelivery>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
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

/// Produce every generated record (keyed by subscriber) and report what was sent and
/// what the broker acknowledged. Blocking: runs on a thread of its own.
fn send(
    brokers: &str,
    topic: &str,
    generator: Generator,
    seed: u64,
    acked: Arc<AtomicU64>,
) -> anyhow::Result<GeneratorReport> {
    let mut config = client::base_config(brokers);
    config
        .set("linger.ms", "10")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("acks", "all")
        .set("message.timeout.ms", "120000");
    let producer: ThreadedProducer<Deliveries> = config
        .create_with_context(Deliveries {
            acked,
            failed: AtomicU64::new(0),
            partitions: Mutex::new(BTreeMap::new()),
        })
        .context("Failed to create the Kafka producer")?;
    let mut report = GeneratorReport {
        seed,
        ..Default::default()
    };
    for r in generator {
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
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} record(s) were not delivered to {topic}");
    }
    report.partitions = ctx
        .partitions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(report)
}

/// Write every invoice of the period as NUMBER.json (the stored document) and NUMBER.pdf.
async fn write_invoices(
    client: &tokio_postgres::Client,
    period: NaiveDate,
    dir: &Path,
    steps: &mut Steps,
) -> anyhow::Result<u64> {
    let total: i64 = client
        .query_one(
            "SELECT count(*) FROM invoices WHERE period = $1",
            &[&period],
        )
        .await?
        .get(0);
    let (mut written, mut after) = (0_u64, 0_i64);
    loop {
        let rows = client
            .query(
                "SELECT seq, number, document FROM invoices WHERE period = $1 AND seq > $2
                  ORDER BY seq LIMIT 500",
                &[&period, &after],
            )
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.get(0);
        for r in &rows {
            let number: String = r.get(1);
            let document: String = r.get(2);
            std::fs::write(dir.join(format!("{number}.json")), &document)
                .with_context(|| format!("Failed to write {number}.json"))?;
            let invoice: Invoice = serde_json::from_str(&document)
                .with_context(|| format!("stored invoice {number} does not decode"))?;
            let pdf =
                invoice_pdf(&invoice).with_context(|| format!("Failed to render {number}.pdf"))?;
            std::fs::write(dir.join(format!("{number}.pdf")), pdf)
                .with_context(|| format!("Failed to write {number}.pdf"))?;
            written += 1;
        }
        steps.progress(format!(
            "{} of {} invoices written",
            count(written),
            count(total)
        ));
    }
    Ok(written)
}

fn add(total: &mut stats::Outcomes, o: &stats::Outcomes) {
    total.consumed += o.consumed;
    total.accepted += o.accepted;
    total.duplicates += o.duplicates;
    total.suspense += o.suspense;
    for (reason, n) in &o.rejected {
        *total.rejected.entry(reason.clone()).or_default() += n;
    }
}

/// Every way what cdrflow stored differs from what the generator sent and expected: the
/// outcome counts, the balance, and each partition's stored offset against the end the
/// broker acknowledged. Empty when everything reconciles.
fn reconcile(
    report: &GeneratorReport,
    got: &stats::Outcomes,
    stored_offsets: &BTreeMap<i32, Option<i64>>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |what: &str, expected: u64, got: i64| {
        if expected as i64 != got {
            out.push(format!(
                "{what}: expected {}, cdrflow has {}",
                count(expected),
                count(got)
            ));
        }
    };
    let e = &report.expected;
    check("records received", report.sent, got.consumed);
    check("accepted", e.accepted, got.accepted);
    check("duplicates", e.duplicates, got.duplicates);
    check("suspense", e.suspense, got.suspense);
    let reasons: BTreeSet<&String> = e.rejected.keys().chain(got.rejected.keys()).collect();
    for r in reasons {
        check(
            &format!("rejected {r}"),
            e.rejected.get(r).copied().unwrap_or(0),
            got.rejected.get(r).copied().unwrap_or(0),
        );
    }
    if !got.balanced() {
        out.push("received ≠ accepted + duplicates + suspense + rejected in Postgres".to_string());
    }
    for (partition, d) in &report.partitions {
        let stored = stored_offsets.get(partition).copied().flatten();
        if stored != Some(d.end_offset) {
            out.push(format!(
                "partition {partition}: the broker acknowledged up to offset {}, the stored offset is {}",
                d.end_offset,
                stored.map_or("none".to_string(), |o| o.to_string())
            ));
        }
    }
    out
}

async fn load_money(
    client: &tokio_postgres::Client,
    period: NaiveDate,
    s: &mut Summary,
) -> anyhow::Result<()> {
    s.revenue_by_service = client
        .query(
            "WITH ev AS (SELECT record_type AS service, count(*) AS events
                           FROM usage_events WHERE period = $1 GROUP BY 1),
                  li AS (SELECT l.service,
                                COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'usage'), 0) AS usage,
                                COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'allowance'), 0) AS allowances
                           FROM invoice_lines l JOIN invoices i USING (number)
                          WHERE i.period = $1 AND l.service IS NOT NULL GROUP BY 1)
             SELECT COALESCE(ev.service, li.service), COALESCE(ev.events, 0),
                    COALESCE(li.usage, 0), COALESCE(li.allowances, 0)
               FROM ev FULL JOIN li ON li.service = ev.service
              ORDER BY array_position(ARRAY['voice', 'sms', 'data'], COALESCE(ev.service, li.service)), 1",
            &[&period],
        )
        .await?
        .iter()
        .map(|r| {
            let (usage, allowances): (Decimal, Decimal) = (r.get(2), r.get(3));
            ServiceRevenue {
                service: r.get(0),
                events: r.get(1),
                usage,
                allowances,
                billed: usage + allowances,
            }
        })
        .collect();
    s.revenue_by_region = client
        .query(
            "SELECT c.region, count(*), sum(i.subtotal), sum(i.vat), sum(i.total)
               FROM invoices i JOIN customers c USING (customer_id)
              WHERE i.period = $1 GROUP BY 1 ORDER BY 5 DESC, 1",
            &[&period],
        )
        .await?
        .iter()
        .map(|r| RegionRevenue {
            region: r.get(0),
            invoices: r.get(1),
            subtotal: r.get(2),
            vat: r.get(3),
            total: r.get(4),
        })
        .collect();
    let t = client
        .query_one(
            "SELECT count(*), min(seq), max(seq), COALESCE(sum(subtotal), 0),
                    COALESCE(sum(vat), 0), COALESCE(sum(total), 0)
               FROM invoices WHERE period = $1",
            &[&period],
        )
        .await?;
    s.invoices = InvoiceTotals {
        count: t.get(0),
        first: t.get::<_, Option<i64>>(1).map(invoices::invoice_number),
        last: t.get::<_, Option<i64>>(2).map(invoices::invoice_number),
        subtotal: t.get(3),
        vat: t.get(4),
        total: t.get(5),
        lines: client
            .query(
                "SELECT l.kind, count(*), sum(l.amount)
                   FROM invoice_lines l JOIN invoices i USING (number)
                  WHERE i.period = $1 GROUP BY 1",
                &[&period],
            )
            .await?
            .iter()
            .map(|r| LineTotal {
                kind: r.get(0),
                lines: r.get(1),
                amount: r.get(2),
            })
            .collect(),
        alerts: client
            .query(
                "SELECT threshold, count(*) FROM alerts WHERE period = $1 GROUP BY 1 ORDER BY 1",
                &[&period],
            )
            .await?
            .iter()
            .map(|r| AlertCount {
                threshold: r.get(0),
                customers: r.get(1),
            })
            .collect(),
    };
    s.invoices
        .lines
        .sort_by_key(|l| LINE_KINDS.iter().position(|(k, _)| *k == l.kind));
    s.top_customers = client
        .query(
            "SELECT i.number, i.customer_id, c.name, c.plan, c.region, i.total
               FROM invoices i JOIN customers c USING (customer_id)
              WHERE i.period = $1 ORDER BY i.total DESC, i.seq LIMIT 10",
            &[&period],
        )
        .await?
        .iter()
        .map(|r| TopCustomer {
            number: r.get(0),
            customer_id: r.get(1),
            name: r.get(2),
            plan: r.get(3),
            region: r.get(4),
            total: r.get(5),
        })
        .collect();
    s.other_months = client
        .query(
            "SELECT to_char(period, 'YYYY-MM'), count(*) FROM usage_events
              WHERE period <> $1 AND src_topic = $2 GROUP BY 1",
            &[&period, &s.topic],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(())
}

/// The daemon's rate from its own batch log: from its start to the last commit, and
/// between the first and the last commit (without start-up).
async fn throughput(
    client: &tokio_postgres::Client,
    group: &str,
    topic: &str,
    started: DateTime<Utc>,
) -> anyhow::Result<Throughput> {
    let r = client
        .query_one(
            "SELECT count(*), COALESCE(sum(records), 0)::int8, min(committed_at), max(committed_at)
               FROM committed_batches WHERE group_id = $1 AND topic = $2",
            &[&group, &topic],
        )
        .await?;
    let (batches, records): (i64, i64) = (r.get(0), r.get(1));
    let (first, last): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = (r.get(2), r.get(3));
    let secs = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_milliseconds() as f64 / 1e3;
    let daemon_secs = last.map_or(0.0, |l| secs(started, l));
    Ok(Throughput {
        records,
        batches,
        daemon_secs,
        records_per_sec: records as f64 / daemon_secs.max(1e-3),
        steady_records_per_sec: first
            .zip(last)
            .map(|(f, l)| secs(f, l))
            .filter(|s| *s > 0.0)
            .map(|s| records as f64 / s),
        generator_records_per_sec: 0.0,
    })
}

/// The numbered progress lines on stderr, and each step's time.
struct Steps {
    tty: bool,
    n: usize,
    current: &'static str,
    started: Instant,
    last_progress: Instant,
    /// A progress line is on the terminal without its newline.
    in_place: bool,
    timings: Vec<StepTiming>,
}

impl Steps {
    fn new() -> Steps {
        Steps {
            tty: std::io::stderr().is_terminal(),
            n: 0,
            current: "",
            started: Instant::now(),
            last_progress: Instant::now(),
            in_place: false,
            timings: Vec::new(),
        }
    }

    fn begin(&mut self, key: &'static str, what: impl Display) {
        self.n += 1;
        self.current = key;
        self.started = Instant::now();
        self.last_progress = Instant::now();
        eprintln!("[{}/{STEPS}] {what}", self.n);
    }

    /// Rewritten in place about once a second on a terminal; a line every five seconds
    /// in a log, which stays readable.
    fn progress(&mut self, what: impl Display) {
        let every = StdDuration::from_millis(if self.tty { 900 } else { 4900 });
        if self.last_progress.elapsed() < every {
            return;
        }
        self.last_progress = Instant::now();
        let secs = self.started.elapsed().as_secs_f64();
        if self.tty {
            eprint!("\r\x1b[K      {what} [{secs:.0} s]");
            self.in_place = true;
        } else {
            eprintln!("      {what} [{secs:.0} s]");
        }
    }

    fn done(&mut self, what: impl Display) -> f64 {
        let secs = self.started.elapsed().as_secs_f64();
        if std::mem::take(&mut self.in_place) {
            eprint!("\r\x1b[K");
        }
        eprintln!("      {what} ({secs:.1} s)");
        self.timings.push(StepTiming {
            step: self.current,
            secs: (secs * 10.0).round() / 10.0,
        });
        secs
    }
}

#[derive(Debug, Clone, Serialize)]
struct StepTiming {
    step: &'static str,
    secs: f64,
}

/// Everything the summary says, also written as `summary.json`. Money is `Decimal`
/// (serialized as strings), summed by Postgres in NUMERIC.
#[derive(Debug, Serialize)]
struct Summary {
    operator: String,
    currency: String,
    /// YYYY-MM
    period: String,
    month: String,
    catalog_version: i32,
    catalog: String,
    topic: String,
    group: String,
    seed: u64,
    records: Records,
    reconciled: bool,
    mismatches: Vec<String>,
    suspense: Suspense,
    revenue_by_service: Vec<ServiceRevenue>,
    revenue_by_region: Vec<RegionRevenue>,
    invoices: InvoiceTotals,
    top_customers: Vec<TopCustomer>,
    /// Accepted events of this run dated in other months (YYYY-MM): out-of-order records
    /// are sent up to two days late, so some from before the month's start arrive with it.
    other_months: BTreeMap<String, i64>,
    throughput: Throughput,
    timings: Vec<StepTiming>,
    files: Files,
    urls: Urls,
    /// A record id whose call crosses a time band, for `cdrflow explain`.
    explain_example: Option<String>,
}

#[derive(Debug, Serialize)]
struct Records {
    sent: u64,
    expected: ExpectedOutcomes,
    processed: stats::Outcomes,
}

#[derive(Debug, Serialize)]
struct Suspense {
    held_records: i64,
    subscribers: i64,
    customers_added: u64,
    plan: String,
    rated: u64,
    already_stored: u64,
    still_held: i64,
}

#[derive(Debug, Serialize)]
struct ServiceRevenue {
    service: String,
    events: i64,
    /// Usage lines of the invoices (rated usage, rounded per invoice).
    usage: Decimal,
    /// Allowance credits (negative).
    allowances: Decimal,
    billed: Decimal,
}

#[derive(Debug, Serialize)]
struct RegionRevenue {
    /// The customer's region; None when it was not given (customers added from suspense).
    region: Option<String>,
    invoices: i64,
    subtotal: Decimal,
    vat: Decimal,
    total: Decimal,
}

#[derive(Debug, Default, Serialize)]
struct InvoiceTotals {
    count: i64,
    first: Option<String>,
    last: Option<String>,
    lines: Vec<LineTotal>,
    subtotal: Decimal,
    vat: Decimal,
    total: Decimal,
    alerts: Vec<AlertCount>,
}

#[derive(Debug, Serialize)]
struct LineTotal {
    kind: String,
    lines: i64,
    amount: Decimal,
}

#[derive(Debug, Serialize)]
struct AlertCount {
    threshold: i16,
    customers: i64,
}

#[derive(Debug, Serialize)]
struct TopCustomer {
    number: String,
    customer_id: i64,
    name: String,
    plan: String,
    region: Option<String>,
    total: Decimal,
}

#[derive(Debug, Default, Serialize)]
struct Throughput {
    records: i64,
    batches: i64,
    /// From the daemon's start to its last commit (start-up included, the idle wait not).
    daemon_secs: f64,
    records_per_sec: f64,
    /// Between the first and the last commit.
    steady_records_per_sec: Option<f64>,
    generator_records_per_sec: f64,
}

#[derive(Debug, Serialize)]
struct Files {
    summary_txt: String,
    summary_json: String,
    generator_report: String,
    invoices_dir: String,
    largest_invoice: Option<String>,
}

#[derive(Debug, Serialize)]
struct Urls {
    metrics: String,
    invoices: String,
    customer_usage: Option<String>,
    /// Whether the daemon keeps serving them after the summary (`--serve`).
    serving: bool,
}

/// Invoice line kinds in the order an invoice reads, with what a billing manager calls them.
const LINE_KINDS: &[(&str, &str)] = &[
    ("usage", "usage charges"),
    ("allowance", "included in plans (allowances)"),
    ("plan_fee", "monthly plan fees"),
    ("discount", "discounts"),
    ("adjustment", "adjustments"),
    ("regulatory_fee", "regulatory fees"),
];

/// The summary as text: aligned tables, money with two decimals and thousands separators.
fn render(s: &Summary) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let cur = &s.currency;
    let _ = writeln!(
        o,
        "\n{} — {} (catalog version {}, amounts in {cur})\n",
        s.operator, s.month, s.catalog_version
    );

    let _ = writeln!(o, "Records");
    let (e, p) = (&s.records.expected, &s.records.processed);
    let mut t = Table::new(&["", "expected", "cdrflow"]);
    let row = |t: &mut Table, label: String, expected: u64, got: i64| {
        let mark = if expected as i64 == got { "" } else { "  ✗" };
        t.row(vec![
            label,
            count(expected),
            format!("{}{mark}", count(got)),
        ]);
    };
    row(&mut t, "received".into(), s.records.sent, p.consumed);
    row(&mut t, "accepted and rated".into(), e.accepted, p.accepted);
    row(
        &mut t,
        "duplicates (counted, never billed)".into(),
        e.duplicates,
        p.duplicates,
    );
    row(
        &mut t,
        "suspense (unknown subscribers)".into(),
        e.suspense,
        p.suspense,
    );
    row(
        &mut t,
        "rejected".into(),
        e.rejected.values().sum(),
        p.rejected_total(),
    );
    let reasons: BTreeSet<&String> = e.rejected.keys().chain(p.rejected.keys()).collect();
    for r in reasons {
        row(
            &mut t,
            format!("  {r}"),
            e.rejected.get(r).copied().unwrap_or(0),
            p.rejected.get(r).copied().unwrap_or(0),
        );
    }
    o += &t.render();
    if s.reconciled {
        let _ = writeln!(
            o,
            "  Reconciled: every record sent is accounted for exactly once, as the generator expected."
        );
    } else {
        let _ = writeln!(o, "  NOT RECONCILED:");
        for m in &s.mismatches {
            let _ = writeln!(o, "    {m}");
        }
    }

    let u = &s.suspense;
    let _ = writeln!(o, "\nSuspense");
    let _ = writeln!(
        o,
        "  {} records of {} unknown subscribers were held. The subscribers were added as customers\n  (plan {}) before the month was closed: {} records rated, {} still held.",
        count(u.held_records),
        count(u.subscribers),
        u.plan,
        count(u.rated),
        count(u.still_held)
    );

    let _ = writeln!(o, "\nRevenue by service, {} ({cur})", s.month);
    let mut t = Table::new(&[
        "service",
        "events",
        "usage charges",
        "included in plans",
        "billed",
    ]);
    let (mut events, mut usage, mut allowances) = (0_i64, Decimal::ZERO, Decimal::ZERO);
    for r in &s.revenue_by_service {
        events += r.events;
        usage += r.usage;
        allowances += r.allowances;
        t.row(vec![
            service_name(&r.service).to_string(),
            count(r.events),
            money(r.usage),
            money(r.allowances),
            money(r.billed),
        ]);
    }
    t.row(vec![
        "total".into(),
        count(events),
        money(usage),
        money(allowances),
        money(usage + allowances),
    ]);
    o += &t.render();
    if !s.other_months.is_empty() {
        let months: Vec<String> = s
            .other_months
            .iter()
            .map(|(m, n)| format!("{} in {m}", count(*n)))
            .collect();
        let _ = writeln!(
            o,
            "  Out-of-order records arrived with this month's traffic but are dated in another month\n  ({}): they are billed with their own month, not on these invoices.",
            months.join(", ")
        );
    }

    let _ = writeln!(
        o,
        "\nRevenue by region (the customer's region, invoiced, {cur})"
    );
    let mut t = Table::new(&["region", "invoices", "subtotal", "VAT", "total"]);
    for r in &s.revenue_by_region {
        t.row(vec![
            r.region.clone().unwrap_or_else(|| "(not given)".into()),
            count(r.invoices),
            money(r.subtotal),
            money(r.vat),
            money(r.total),
        ]);
    }
    o += &t.render();

    let i = &s.invoices;
    let _ = writeln!(o, "\nInvoices issued for {}", s.month);
    match (&i.first, &i.last) {
        (Some(first), Some(last)) => {
            let _ = writeln!(o, "  {} invoices, {first} to {last}", count(i.count));
        }
        _ => {
            let _ = writeln!(o, "  none");
        }
    }
    let mut t = Table::new(&["", "lines", cur.as_str()]);
    for l in &i.lines {
        let label = LINE_KINDS
            .iter()
            .find(|(k, _)| *k == l.kind)
            .map_or(l.kind.as_str(), |(_, name)| name);
        t.row(vec![label.to_string(), count(l.lines), money(l.amount)]);
    }
    t.row(vec!["subtotal".into(), String::new(), money(i.subtotal)]);
    t.row(vec!["VAT".into(), String::new(), money(i.vat)]);
    t.row(vec!["total".into(), String::new(), money(i.total)]);
    o += &t.render();
    if !i.alerts.is_empty() {
        let alerts: Vec<String> = i
            .alerts
            .iter()
            .map(|a| {
                format!(
                    "{} % of the limit: {} customers",
                    a.threshold,
                    count(a.customers)
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "  Credit-limit alerts during the month: {}",
            alerts.join("; ")
        );
    }

    let _ = writeln!(
        o,
        "\nTop {} customers by invoice total ({cur})",
        s.top_customers.len()
    );
    let mut t = Table::new(&["", "invoice", "customer", "name", "plan", "region", "total"]);
    for (n, c) in s.top_customers.iter().enumerate() {
        t.row(vec![
            format!("{}.", n + 1),
            c.number.clone(),
            c.customer_id.to_string(),
            c.name.clone(),
            c.plan.clone(),
            c.region.clone().unwrap_or_default(),
            money(c.total),
        ]);
    }
    for left in [1, 3, 4, 5] {
        t.right[left] = false;
    }
    o += &t.render();

    let th = &s.throughput;
    let _ = writeln!(o, "\nThroughput");
    let _ = writeln!(
        o,
        "  daemon: {} records in {} batches, {:.1} s from start-up to the last commit: {} records/s{}",
        count(th.records),
        count(th.batches),
        th.daemon_secs,
        count(th.records_per_sec.round() as i64),
        th.steady_records_per_sec.map_or(String::new(), |r| format!(
            " ({} records/s from the first commit to the last)",
            count(r.round() as i64)
        ))
    );
    let _ = writeln!(
        o,
        "  generator: {} records/s to the broker",
        count(th.generator_records_per_sec.round() as i64)
    );
    let total: f64 = s.timings.iter().map(|t| t.secs).sum();
    let steps: Vec<String> = s
        .timings
        .iter()
        .map(|t| format!("{} {:.1} s", t.step, t.secs))
        .collect();
    let _ = writeln!(o, "  steps: {}; all {total:.1} s", steps.join(", "));

    let _ = writeln!(o, "\nWhere to look");
    let f = &s.files;
    let mut t = Table::new(&["", ""]);
    t.right = vec![false, false];
    t.row(vec![
        format!("{}/", f.invoices_dir),
        format!(
            "{} invoices, NUMBER.pdf and NUMBER.json{}",
            count(i.count),
            f.largest_invoice
                .as_ref()
                .map_or(String::new(), |l| format!("; the largest: {l}"))
        ),
    ]);
    t.row(vec![
        format!("{}, {}", f.summary_txt, f.summary_json),
        "this summary, as text and JSON".into(),
    ]);
    t.row(vec![
        f.generator_report.clone(),
        "what was sent, and what each record had to become".into(),
    ]);
    t.row(vec![
        s.urls.metrics.clone(),
        "the daemon's Prometheus metrics".into(),
    ]);
    t.row(vec![
        s.urls.invoices.clone(),
        "the month's invoices (API)".into(),
    ]);
    if let Some(usage) = &s.urls.customer_usage {
        t.row(vec![
            usage.clone(),
            "a customer's usage, allowances left and estimate".into(),
        ]);
    }
    o += &t.render();
    if !s.urls.serving {
        let _ = writeln!(
            o,
            "  The daemon has stopped: run the demo with --serve (scripts/demo.sh: DEMO_SERVE=1) to keep\n  it and these URLs up until Ctrl-C."
        );
    }
    let _ = writeln!(
        o,
        "  Grafana dashboards (pipeline; revenue and customers): `docker compose up`, see README.md."
    );
    let _ = writeln!(
        o,
        "  `cdrflow stats` reconciles per partition (group {}, topic {});",
        s.group, s.topic
    );
    let _ = writeln!(
        o,
        "  `cdrflow explain {}` shows how one price was made; docs/catalog.md explains the prices.",
        s.explain_example.as_deref().unwrap_or("RECORD_ID")
    );
    o
}

fn service_name(service: &str) -> &str {
    match service {
        "sms" => "SMS",
        other => other,
    }
}

/// Columns padded to their widest cell: the first left-aligned, the rest right-aligned
/// (numbers), unless `right` says otherwise.
struct Table {
    head: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|h| h.to_string()).collect(),
            right: (0..head.len()).map(|i| i > 0).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        let width = |cell: &str| cell.chars().count();
        let mut widths: Vec<usize> = self.head.iter().map(|h| width(h)).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(width(c));
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .zip(&self.right)
                .map(|((c, w), right)| {
                    let pad = " ".repeat(w - width(c));
                    if *right {
                        format!("{pad}{c}")
                    } else {
                        format!("{c}{pad}")
                    }
                })
                .collect();
            format!("  {}", padded.join("   ")).trim_end().to_string() + "\n"
        };
        let mut out = String::new();
        if self.head.iter().any(|h| !h.is_empty()) {
            out += &line(&self.head);
        }
        for r in &self.rows {
            out += &line(r);
        }
        out
    }
}

/// 1234567 → "1,234,567".
fn count(n: impl Into<i128>) -> String {
    let n: i128 = n.into();
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", grouped(&n.unsigned_abs().to_string()))
}

/// An amount with two decimals (half away from zero) and thousands separators.
fn money(d: Decimal) -> String {
    let mut d = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    d.rescale(2);
    let sign = if d.is_sign_negative() && !d.is_zero() {
        "-"
    } else {
        ""
    };
    let text = d.abs().to_string();
    let (whole, cents) = text.split_once('.').unwrap_or((&text, "00"));
    format!("{sign}{}.{cents}", grouped(whole))
}

fn grouped(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn counts_and_amounts_are_grouped_by_thousands() {
        assert_eq!(count(0_u64), "0");
        assert_eq!(count(999_u64), "999");
        assert_eq!(count(1_000_u64), "1,000");
        assert_eq!(count(-1_234_567_i64), "-1,234,567");
        let d = |s| Decimal::from_str(s).unwrap();
        assert_eq!(money(d("0")), "0.00");
        assert_eq!(money(d("1234567.891")), "1,234,567.89");
        assert_eq!(money(d("0.005")), "0.01");
        assert_eq!(money(d("-1000.5")), "-1,000.50");
        assert_eq!(money(d("-0.001")), "0.00");
        assert_eq!(money(d("12.000000")), "12.00");
    }

    #[test]
    fn table_columns_line_up_whatever_the_cell_widths() {
        let mut t = Table::new(&["region", "total"]);
        t.row(vec!["Fès-Meknès".into(), "1,000.00".into()]);
        t.row(vec!["Oriental".into(), "5.00".into()]);
        assert_eq!(
            t.render(),
            "  region          total\n  Fès-Meknès   1,000.00\n  Oriental         5.00\n"
        );
    }

    #[test]
    fn the_billed_month_is_the_last_one_over_in_the_operator_zone() {
        let tz: Tz = "Africa/Casablanca".parse().unwrap();
        // 31 October 23:30 UTC is already 1 November in Casablanca (UTC+1).
        let now = Utc.with_ymd_and_hms(2026, 10, 31, 23, 30, 0).unwrap();
        assert_eq!(
            last_full_month(tz, now).unwrap(),
            NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()
        );
        let now = Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap();
        assert_eq!(
            last_full_month(tz, now).unwrap(),
            NaiveDate::from_ymd_opt(2025, 12, 1).unwrap()
        );
        assert_eq!(
            local_midnight(tz, NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()),
            Utc.with_ymd_and_hms(2026, 9, 30, 23, 0, 0).unwrap()
        );
    }

    fn outcomes(consumed: i64, accepted: i64, rejected: &[(&str, i64)]) -> stats::Outcomes {
        stats::Outcomes {
            consumed,
            accepted,
            duplicates: 0,
            suspense: 0,
            rejected: rejected.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
        }
    }

    fn report(sent: u64, accepted: u64, rejected: &[(&str, u64)]) -> GeneratorReport {
        GeneratorReport {
            sent,
            expected: ExpectedOutcomes {
                accepted,
                rejected: rejected.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
                ..Default::default()
            },
            partitions: [(
                0,
                PartitionDelivery {
                    records: sent,
                    end_offset: sent as i64,
                },
            )]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_run_that_matches_the_generator_reconciles() {
        let got = outcomes(10, 8, &[("missing_field", 2)]);
        let offsets = [(0, Some(10))].into();
        assert!(reconcile(&report(10, 8, &[("missing_field", 2)]), &got, &offsets).is_empty());
    }

    #[test]
    fn every_difference_is_named() {
        let got = outcomes(10, 7, &[("missing_field", 2), ("invalid_json", 1)]);
        let offsets = [(0, Some(9))].into();
        let m = reconcile(&report(10, 8, &[("missing_field", 2)]), &got, &offsets);
        assert_eq!(
            m,
            vec![
                "accepted: expected 8, cdrflow has 7".to_string(),
                "rejected invalid_json: expected 0, cdrflow has 1".to_string(),
                "partition 0: the broker acknowledged up to offset 10, the stored offset is 9"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn a_stored_url_is_shown_without_its_password() {
        let shown = redacted("postgres://billing:s3cret@db.example:6543/cdrflow_demo").unwrap();
        assert_eq!(shown, "billing@db.example:6543/cdrflow_demo");
    }
}
