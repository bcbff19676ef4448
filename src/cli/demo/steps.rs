//! The demo's eight steps, each a method of [`Demo`] that prints its `[n/8]` line, does
//! its work through the library (storage, generator, pipeline) and hands on what the
//! later steps need; and the summary's output.

use super::month::Month;
use super::progress::Steps;
use super::summary;
use super::{daemon_settings, DemoArgs};
use crate::cli::{bill, generate};
use crate::generator::{
    customer_pool_on, AnomalyRates, Customer, Generator, GeneratorConfig, GeneratorReport,
};
use crate::kafka::{client, KafkaSettings};
use crate::pipeline::{self, SourceExit};
use crate::render::numbers::count;
use crate::render::{
    self,
    summary::{Files, Records, Summary, Suspense, Urls},
};
use crate::storage::{self, catalog::Applied, catalog::Version, customers::OnExisting};
use crate::storage::{invoices, suspense};
use crate::telemetry::metrics::Registry;
use crate::telemetry::Metrics;
use anyhow::{bail, Context as _};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use deadpool_postgres::Pool;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The catalog the demo applies unless `--catalog` names another: built in, so the
/// binary runs the demo from any folder.
const DEFAULT_CATALOG: &str = include_str!("../../../catalog/default.toml");
/// Partitions of the demo topic: enough for both committers and a visible spread.
const PARTITIONS: i32 = 6;
/// Seconds without a record after which the daemon counts the topic as drained. The
/// idle time counts from the partitions' assignment, and the broker's first fetch of a
/// topic just written can take a few seconds: the wait must outlast it.
const IDLE_SECS: u64 = 10;
/// How long the broker may take to answer the first request before the demo gives up.
const BROKER_PATIENCE: Duration = Duration::from_secs(20);

/// What every step reads: the flags, this run's topic, the database as it may be shown;
/// and the progress lines the steps print.
pub(super) struct Demo<'a> {
    args: &'a DemoArgs,
    pub(super) topic: String,
    shown_db: String,
    steps: Steps,
}

/// The database connections the steps share.
pub(super) struct Db {
    /// For the demo's own reads and the library calls that take a client.
    client: tokio_postgres::Client,
    /// For the library calls that take a pooled connection (suspense, billing).
    pool: Pool,
}

/// What was sent to the topic.
pub(super) struct Sent {
    report: GeneratorReport,
    /// How long sending took.
    secs: f64,
    report_path: PathBuf,
}

/// The daemon's run to the drained topic.
pub(super) struct Drained {
    group: String,
    /// Its counters, which a `--serve` daemon goes on with.
    pub(super) metrics: Metrics,
    started: DateTime<Utc>,
}

impl<'a> Demo<'a> {
    pub(super) fn new(args: &'a DemoArgs) -> anyhow::Result<Demo<'a>> {
        let steps = Steps::new();
        let shown_db = redacted(&args.db.database_url)?;
        let topic = match &args.topic {
            Some(t) if t.trim().is_empty() => bail!("--topic must not be empty"),
            Some(t) => t.clone(),
            None => format!("cdr.demo.{}", Utc::now().timestamp()),
        };
        Ok(Demo {
            args,
            topic,
            shown_db,
            steps,
        })
    }

    /// Step 1, before any work is done: everything outside the process answers. The
    /// HTTP address is free, the database is migrated and unused, the topic exists.
    pub(super) async fn prepare(&mut self) -> anyhow::Result<Db> {
        let (args, topic, shown_db) = (self.args, &self.topic, &self.shown_db);
        let url = &args.db.database_url;
        self.steps.begin(
            "migrate",
            format!(
                "Preparing PostgreSQL ({shown_db}) and the broker ({})",
                args.kafka.brokers
            ),
        );
        std::net::TcpListener::bind(args.http).with_context(|| {
            format!(
                "Failed to listen on {} for the daemon's endpoints: pass another --http",
                args.http
            )
        })?;
        if args.fresh {
            drop_database(url, shown_db).await?;
        }
        let applied = storage::migrate(url)
            .await
            .with_context(|| format!("Failed to reach and migrate PostgreSQL at {shown_db}"))?;
        let client = storage::connect(url)
            .await
            .with_context(|| format!("Failed to connect to PostgreSQL at {shown_db}"))?;
        if storage::database::is_used(&client).await? {
            bail!(
                "{shown_db} has processed records or issued invoices already: this run's records would be duplicates of the last run's and its month billed already. Pass --fresh to drop and recreate it, or point --database-url at an empty database"
            );
        }
        match tokio::time::timeout(
            BROKER_PATIENCE,
            client::ensure_topics(&args.kafka, &[topic], PARTITIONS),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!(
                "Failed to reach the Kafka broker at {} to create {topic} (is it running? --brokers): {e}",
                args.kafka.brokers
            ),
            Err(_) => bail!(
                "The Kafka broker at {} did not answer within {} s: is it running (--brokers)?",
                args.kafka.brokers,
                BROKER_PATIENCE.as_secs()
            ),
        }
        self.steps.done(format!(
            "schema up to date ({applied} migration(s) applied), topic {topic} ready"
        ));
        Ok(Db {
            client,
            pool: storage::pool(url, 2)?,
        })
    }

    /// Step 2, the catalog: `--catalog`'s file or the built-in one, as a new version
    /// unless it is the active one already.
    pub(super) async fn apply_catalog(&mut self, db: &mut Db) -> anyhow::Result<Version> {
        let (catalog_text, catalog_name) = match &self.args.catalog {
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
        self.steps
            .begin("catalog", format!("Applying the catalog {catalog_name}"));
        let applied = storage::catalog::apply(&mut db.client, &catalog_text)
            .await
            .map_err(|e| anyhow::anyhow!("{catalog_name}: {e}"))?;
        let catalog = storage::catalog::load(&db.client, None)
            .await?
            .context("the catalog just applied is not there")?;
        self.steps.done(match applied {
            Applied::New { version } => format!("stored as version {version}: {}", catalog.label),
            Applied::Unchanged { version } => {
                format!("already the active version {version}: {}", catalog.label)
            }
        });
        Ok(catalog)
    }

    /// Step 3, customers on the catalog's plans; the generator draws the same numbers.
    pub(super) async fn create_customers(
        &mut self,
        db: &Db,
        catalog: &Version,
    ) -> anyhow::Result<()> {
        let args = self.args;
        self.steps.begin(
            "customers",
            format!(
                "Creating {} customers on the catalog's plans (seed {})",
                count(args.customers),
                args.seed
            ),
        );
        let plans: Vec<&str> = catalog.catalog.plans.keys().map(String::as_str).collect();
        let pool = customer_pool_on(args.seed, args.customers as usize, &plans);
        let upserted = storage::customers::upsert(&db.client, &pool, OnExisting::Keep).await?;
        self.steps
            .done(format!("{} new in the database", count(upserted.added)));
        Ok(())
    }

    /// Step 4, a month of traffic to Kafka with anomalies; the generator's report says
    /// what each record has to become.
    pub(super) async fn send_month(
        &mut self,
        month: &Month,
        tz: Tz,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Sent> {
        let (args, topic) = (self.args, &self.topic);
        self.steps.begin(
            "generate",
            format!(
                "Sending {} CDRs of {} ({tz}) with anomalies to {topic}",
                count(args.records),
                month.name()
            ),
        );
        let generator = Generator::new(GeneratorConfig {
            seed: args.seed,
            count: args.records,
            customers: args.customers as usize,
            start: month.start,
            span: month.end - month.start,
            timezone: tz,
            now,
            rates: AnomalyRates::default(),
        })
        .map_err(anyhow::Error::msg)?;
        let acked = Arc::new(AtomicU64::new(0));
        let sending = tokio::task::spawn_blocking({
            let (kafka, topic, acked, seed) =
                (args.kafka.clone(), topic.clone(), acked.clone(), args.seed);
            move || send(&kafka, &topic, generator, seed, acked)
        });
        tokio::pin!(sending);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let report = loop {
            tokio::select! {
                r = &mut sending => break r.context("the generator thread failed")??,
                _ = tick.tick() => {
                    let n = acked.load(Ordering::Relaxed);
                    self.steps.progress(format!("{} of {} acknowledged by the broker", count(n), count(args.records)));
                }
            }
        };
        let secs = self.steps.done(format!(
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
        Ok(Sent {
            report,
            secs,
            report_path,
        })
    }

    /// Step 5, the daemon until the topic is drained.
    pub(super) async fn drain(&mut self, tz: Tz, sent: &Sent) -> anyhow::Result<Drained> {
        let (args, topic) = (self.args, &self.topic);
        self.steps.begin(
            "daemon",
            format!(
                "Running the daemon until {topic} is drained (metrics on http://{}/metrics)",
                args.http
            ),
        );
        let settings = daemon_settings(args, topic, tz, Some(IDLE_SECS))?;
        let group = settings.source.group.clone();
        let metrics = Metrics::new(Registry::new())?;
        let started = Utc::now();
        // When it returns, every thread the daemon started is stopped.
        let daemon = pipeline::run(settings, metrics.clone());
        tokio::pin!(daemon);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let since = Instant::now();
        let exit = loop {
            tokio::select! {
                r = &mut daemon => break r?,
                _ = tick.tick() => {
                    // Batches commit thousands at a time: the average since start-up reads
                    // steadier than the last second's count.
                    let n = metrics.records_consumed.get();
                    let rate = n as f64 / since.elapsed().as_secs_f64().max(1e-3);
                    self.steps.progress(format!(
                        "{} of {} records committed ({} records/s so far)",
                        count(n), count(sent.report.sent), count(rate.round() as u64)
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
        self.steps.done(format!(
            "{} records committed; idle for {IDLE_SECS} s, so drained",
            count(metrics.records_consumed.get())
        ));
        Ok(Drained {
            group,
            metrics,
            started,
        })
    }

    /// Step 6, suspense: the unknown subscribers become customers before the month
    /// closes, or their usage would be missing from this month's invoices.
    pub(super) async fn resolve_suspense(
        &mut self,
        db: &Db,
        catalog: &Version,
        month: &Month,
    ) -> anyhow::Result<Suspense> {
        self.steps.begin(
            "suspense",
            "Resolving suspense: unknown subscribers become customers, their records are rated",
        );
        let held = suspense::held_subscribers_of_topic(&db.client, &self.topic).await?;
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
            .map(|(i, h)| {
                // Activated on the first day of the month they were seen in.
                Customer::on_plan(
                    &h.msisdn,
                    &format!("New customer {}", i + 1),
                    &plan,
                    month.period,
                )
            })
            .collect();
        let held_records: i64 = held.iter().map(|h| h.records).sum();
        let imported = storage::customers::upsert(&db.client, &newcomers, OnExisting::Keep).await?;
        let mut pooled = db
            .pool
            .get()
            .await
            .context("Failed to connect to PostgreSQL")?;
        storage::suspense::resolve(&mut pooled, catalog).await?;
        let ended = suspense::resolutions_of_topic(&db.client, &self.topic).await?;
        self.steps.done(format!(
            "{} held records of {} subscribers: {} customers added (plan {plan}), {} records rated, {} still held",
            count(held_records),
            count(held.len() as i64),
            count(imported.added),
            count(ended.rated),
            count(ended.still_held)
        ));
        Ok(Suspense {
            held_records,
            subscribers: held.len() as i64,
            customers_added: imported.added,
            plan,
            rated: ended.rated,
            already_stored: ended.already_stored,
            still_held: ended.still_held,
        })
    }

    /// Step 7, the month's invoices in Postgres and as files.
    pub(super) async fn bill(
        &mut self,
        db: &Db,
        catalog: &Version,
        month: &Month,
    ) -> anyhow::Result<()> {
        let invoices_dir = self.invoices_dir();
        self.steps.begin(
            "bill",
            format!(
                "Billing {}: invoices in Postgres and {} (JSON + PDF)",
                month.name(),
                invoices_dir.display()
            ),
        );
        let mut pooled = db
            .pool
            .get()
            .await
            .context("Failed to connect to PostgreSQL")?;
        let billed = invoices::bill_period(&mut pooled, catalog, month.period, 1000).await?;
        // The dashboard and `cdrflow report` read the aggregates: bring them up to the bill.
        storage::reports::refresh(&db.client, catalog.catalog.operator.timezone.name(), false)
            .await
            .context("Failed to refresh the report aggregates")?;
        if invoices_dir.exists() {
            std::fs::remove_dir_all(&invoices_dir)
                .with_context(|| format!("Failed to clear {}", invoices_dir.display()))?;
        }
        std::fs::create_dir_all(&invoices_dir)
            .with_context(|| format!("Failed to create {}", invoices_dir.display()))?;
        let written =
            write_invoices(&db.client, month.period, &invoices_dir, &mut self.steps).await?;
        self.steps.done(format!(
            "{} invoices issued, {} written as JSON and PDF",
            count(billed.issued),
            count(written)
        ));
        Ok(())
    }

    /// Step 8, the summary: the reconciliation, the month's money, the throughput, and
    /// where to look next.
    pub(super) async fn summarize(
        &mut self,
        db: &Db,
        catalog: &Version,
        month: &Month,
        sent: &Sent,
        daemon: &Drained,
        suspense: Suspense,
    ) -> anyhow::Result<Summary> {
        self.steps.begin("summary", "Summarizing");
        let (args, topic, client, period) = (self.args, &self.topic, &db.client, month.period);
        let (processed, stored_offsets) = summary::processed(client, &daemon.group, topic).await?;
        let mismatches = summary::reconcile(&sent.report, &processed, &stored_offsets);
        let revenue_by_service = storage::summary::revenue_by_service(client, period).await?;
        let revenue_by_region = storage::summary::revenue_by_region(client, period).await?;
        let invoices = summary::invoice_totals(client, period).await?;
        let top_customers = storage::summary::top_invoices(client, period).await?;
        let other_months = storage::summary::usage_in_other_months(client, period, topic).await?;
        let mut throughput =
            summary::throughput(client, &daemon.group, topic, daemon.started).await?;
        throughput.generator_records_per_sec = sent.report.sent as f64 / sent.secs.max(1e-3);
        let explain_example = storage::summary::record_crossing_bands(client, period).await?;
        let invoices_dir = self.invoices_dir();
        let largest_invoice = top_customers.first().map(|top| {
            invoices_dir
                .join(format!("{}.pdf", top.number))
                .display()
                .to_string()
        });
        let customer_usage = top_customers.first().map(|top| {
            format!(
                "http://{}/api/customers/{}/usage?period={}",
                args.http,
                top.customer_id,
                month.yyyy_mm()
            )
        });
        let op = &catalog.catalog.operator;
        let mut summary = Summary {
            operator: op.name.clone(),
            currency: op.currency.clone(),
            period: month.yyyy_mm(),
            month: month.name(),
            catalog_version: catalog.version,
            catalog: catalog.label.clone(),
            topic: topic.clone(),
            group: daemon.group.clone(),
            seed: args.seed,
            records: Records {
                sent: sent.report.sent,
                expected: sent.report.expected.clone(),
                processed,
            },
            reconciled: mismatches.is_empty(),
            mismatches,
            suspense,
            revenue_by_service,
            revenue_by_region,
            invoices,
            top_customers,
            other_months,
            throughput,
            timings: Vec::new(),
            files: Files {
                summary_txt: args.out.join("summary.txt").display().to_string(),
                summary_json: args.out.join("summary.json").display().to_string(),
                generator_report: sent.report_path.display().to_string(),
                invoices_dir: invoices_dir.display().to_string(),
                largest_invoice,
            },
            urls: Urls {
                metrics: format!("http://{}/metrics", args.http),
                invoices: format!(
                    "http://{}/api/invoices?period={}",
                    args.http,
                    month.yyyy_mm()
                ),
                customer_usage,
                serving: args.serve,
            },
            explain_example,
        };
        self.steps.done("done");
        summary.timings = self.steps.timings.clone();
        Ok(summary)
    }

    /// Where the invoices are written: `OUT/invoices`.
    fn invoices_dir(&self) -> PathBuf {
        self.args.out.join("invoices")
    }
}

/// The summary on stdout, and as `summary.txt` and `summary.json`.
pub(super) fn publish(summary: &Summary) -> anyhow::Result<()> {
    let text = render::summary::text(summary);
    print!("{text}");
    std::fs::write(&summary.files.summary_txt, &text)
        .with_context(|| format!("Failed to write {}", summary.files.summary_txt))?;
    std::fs::write(
        &summary.files.summary_json,
        serde_json::to_vec_pretty(summary)?,
    )
    .with_context(|| format!("Failed to write {}", summary.files.summary_json))?;
    Ok(())
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
    let server = storage::database::connect_to_server(url)
        .await
        .with_context(|| format!("Failed to reach PostgreSQL at {shown}"))?;
    storage::database::drop_database(&server, &name)
        .await
        .with_context(|| format!("Failed to drop {name}"))?;
    Ok(())
}

/// Produce every generated record (keyed by subscriber) and report what was sent and
/// what the broker acknowledged. Blocking: runs on a thread of its own.
fn send(
    kafka: &KafkaSettings,
    topic: &str,
    generator: Generator,
    seed: u64,
    acked: Arc<AtomicU64>,
) -> anyhow::Result<GeneratorReport> {
    let mut report = GeneratorReport {
        seed,
        ..Default::default()
    };
    generate::produce(kafka, topic, generator, 0, acked, &mut report)?;
    Ok(report)
}

/// Write every invoice of the period as NUMBER.json and NUMBER.pdf, with progress.
async fn write_invoices(
    client: &tokio_postgres::Client,
    period: NaiveDate,
    dir: &Path,
    steps: &mut Steps,
) -> anyhow::Result<u64> {
    let total = invoices::count_issued(client, period).await?;
    let (written, _) = bill::write_files(client, period, dir, true, |n| {
        steps.progress(format!("{} of {} invoices written", count(n), count(total)))
    })
    .await?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_url_is_shown_without_its_password() {
        let shown = redacted("postgres://billing:s3cret@db.example:6543/cdrflow_demo").unwrap();
        assert_eq!(shown, "billing@db.example:6543/cdrflow_demo");
    }
}
