//! `cdrflow demo`: the whole job end to end, in this one process, calling the same library
//! code as the other subcommands: migrate, apply the shipped catalog, create customers,
//! send last month's CDRs (with the default anomaly mix) to Kafka, run the daemon until
//! the topic is drained, rate the suspense of unknown subscribers, bill the month, and
//! print what a billing manager asks first: did every record arrive exactly once, what is
//! the month worth, who was invoiced for how much, and where to look next. Progress goes
//! to stderr, the summary to stdout and to `OUT/summary.txt` and `OUT/summary.json`.
//!
//! Here are the flags and the list of steps; `steps` holds each step, `summary` fills in
//! the summary and reconciles, `render::summary` writes it as text, `month` finds the
//! month to bill and `progress` prints the step lines.
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
use crate::kafka::KafkaSettings;
use crate::pipeline::{self, RunSettings};
use crate::telemetry::Metrics;
use anyhow::bail;
use chrono::Utc;
use chrono_tz::Tz;
use clap::{CommandFactory as _, FromArgMatches as _};
use month::Month;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use steps::{publish, Demo};

mod month;
mod progress;
mod steps;
mod summary;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub kafka: KafkaSettings,
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

/// The demo's steps in order. Each prints its `[n/8]` line and what it did, and hands
/// on what the later ones need.
async fn demo(args: &DemoArgs) -> anyhow::Result<Done> {
    let mut demo = Demo::new(args)?;
    let mut db = demo.prepare().await?;
    let catalog = demo.apply_catalog(&mut db).await?;
    demo.create_customers(&db, &catalog).await?;
    let tz = catalog.catalog.operator.timezone;
    let now = Utc::now();
    let month = Month::last_full(tz, now)?;
    let sent = demo.send_month(&month, tz, now).await?;
    let daemon = demo.drain(tz, &sent).await?;
    let suspense = demo.resolve_suspense(&db, &catalog, &month).await?;
    demo.bill(&db, &catalog, &month).await?;
    let summary = demo
        .summarize(&db, &catalog, &month, &sent, &daemon, suspense)
        .await?;
    publish(&summary)?;
    Ok(Done {
        reconciled: summary.reconciled,
        topic: demo.topic,
        timezone: tz,
        metrics: daemon.metrics,
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
    // No biller, whatever the settings file or `CDRFLOW_CLOSE_AFTER_DAYS` say: the demo
    // closes the month itself once suspense is resolved, and a biller closing it first
    // would bill the rest of the month's traffic, and the resolved suspense, as late
    // usage on the next month's invoices.
    run.close_after_days = None;
    // The demo's own Kafka settings, flags included.
    run.kafka = args.kafka.clone();
    run.settings()
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
