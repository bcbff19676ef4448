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

use super::config::FileSettings;
use super::{Cli, Command, DatabaseArgs};
use crate::generator::{
    customer_pool_on, AnomalyRates, Customer, Generator, GeneratorConfig, GeneratorReport,
};
use crate::kafka::client;
use crate::pipeline::{self, RunSettings, SourceExit};
use crate::storage::{self, catalog::Applied, customers::OnExisting, invoices, stats};
use crate::telemetry::metrics::Registry;
use crate::telemetry::Metrics;
use anyhow::{bail, Context as _};
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use clap::{CommandFactory as _, FromArgMatches as _};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Display;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};
use summary::{
    add, count, load_money, reconcile, render, throughput, Files, InvoiceTotals, Records,
    StepTiming, Summary, Suspense, Throughput, Urls,
};

mod summary;

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
    #[arg(long, env = "CDRFLOW_HTTP", default_value = "127.0.0.1:8080")]
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
        run_daemon(settings, done.metrics).await?;
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
    let daemon = run_daemon(settings, metrics.clone());
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
    match exit {
        SourceExit::Shutdown => {
            bail!("The daemon was stopped by a signal before {topic} was drained")
        }
        SourceExit::Held => bail!(
            "Partitions of {topic} are held: their stored offsets are past the broker's log end (see the log)"
        ),
        SourceExit::Idle => {}
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
    storage::suspense::resolve(&mut pooled, &catalog).await?;
    let r = client
        .query_one(
            "SELECT count(*) FILTER (WHERE resolution = 'rated'),
                    count(*) FILTER (WHERE resolution = 'duplicate'),
                    count(*) FILTER (WHERE resolved_at IS NULL)
               FROM suspense_records WHERE src_topic = $1",
            &[&topic],
        )
        .await?;
    let (rated, already_stored, still_held): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
    steps.done(format!(
        "{} held records of {} subscribers: {} customers added (plan {plan}), {} records rated, {} still held",
        count(held_records),
        count(held.len() as i64),
        count(imported.added),
        count(rated),
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
    // The dashboard and `cdrflow report` read the aggregates: bring them up to the bill.
    crate::storage::reports::refresh(&client, catalog.catalog.operator.timezone.name())
        .await
        .context("Failed to refresh the report aggregates")?;
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
            rated,
            already_stored,
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

/// The daemon's settings exactly as `cdrflow run` makes them from its flags, the
/// `CDRFLOW_*` environment and the settings file (found as `main` finds it), so the
/// demo runs the daemon users run, with their tuning.
fn daemon_settings(
    args: &DemoArgs,
    topic: &str,
    tz: Tz,
    exit_when_idle: Option<u64>,
) -> anyhow::Result<RunSettings> {
    let process_args: Vec<OsString> = std::env::args_os().collect();
    let command = FileSettings::load(&process_args).and_then(|file| file.apply(Cli::command()))?;
    let mut argv: Vec<String> = [
        "cdrflow",
        "run",
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
    let matches = command
        .try_get_matches_from(argv)
        .map_err(|e| anyhow::anyhow!("the daemon's settings: {e}"))?;
    let Command::Run(mut run) = Cli::from_arg_matches(&matches)?.command else {
        bail!("the daemon's settings did not parse as `cdrflow run`");
    };
    // The demo closes the month itself, once suspense is resolved; the daemon's biller
    // closing it first would turn the rest of the month's traffic into late usage.
    run.close_after_days = None;
    run.settings()
}

/// The daemon in an actix system of its own, on a thread of its own, so that when it
/// returns every actor it started is gone with it: its suspense resolver, on the system
/// arbiter, would otherwise keep running beside the demo's next steps.
async fn run_daemon(settings: RunSettings, metrics: Metrics) -> anyhow::Result<SourceExit> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("cdrflow-daemon".into())
        .spawn(move || {
            let result = actix_rt::System::new().block_on(pipeline::run(settings, metrics));
            let _ = tx.send(result);
        })
        .context("Failed to start the daemon's thread")?;
    rx.await.context("The daemon stopped without an answer")?
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

/// Produce every generated record (keyed by subscriber) and report what was sent and
/// what the broker acknowledged. Blocking: runs on a thread of its own.
fn send(
    brokers: &str,
    topic: &str,
    generator: Generator,
    seed: u64,
    acked: Arc<AtomicU64>,
) -> anyhow::Result<GeneratorReport> {
    let mut report = GeneratorReport {
        seed,
        ..Default::default()
    };
    super::generate::produce(brokers, topic, generator, 0, acked, &mut report)?;
    Ok(report)
}

/// Write every invoice of the period as NUMBER.json and NUMBER.pdf, with progress.
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
    let (written, _) = super::bill::write_files(client, period, dir, true, |n| {
        steps.progress(format!("{} of {} invoices written", count(n), count(total)))
    })
    .await?;
    Ok(written)
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_stored_url_is_shown_without_its_password() {
        let shown = redacted("postgres://billing:s3cret@db.example:6543/cdrflow_demo").unwrap();
        assert_eq!(shown, "billing@db.example:6543/cdrflow_demo");
    }
}
