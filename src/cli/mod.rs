//! The command line: one module per subcommand. Settings come from flags, `CDRFLOW_*`
//! environment variables and a settings file (see [`config`]); every value is checked
//! before anything starts, and a wrong one is named in the error (exit status 2).

pub mod bill;
pub mod catalog;
pub mod config;
pub mod customers;
pub mod demo;
pub mod explain;
pub mod generate;
pub mod migrate;
pub mod replay;
pub mod report;
pub mod run;
pub mod stats;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "cdrflow",
    version,
    about = "Telecom mediation, rating and billing engine: CDRs from Kafka, exact money out."
)]
pub struct Cli {
    /// Settings file (TOML; keys are the CDRFLOW_* variables' names without the prefix,
    /// in lower case). Default: ./cdrflow.toml if it exists. Flags and the environment
    /// override it.
    #[arg(long, global = true, env = "CDRFLOW_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: consume CDRs, mediate them, commit them exactly once.
    Run(run::RunArgs),
    /// Produce synthetic CDRs (with anomalies) to Kafka or a JSONL file.
    Generate(generate::GenerateArgs),
    /// Create the database if needed and apply the schema migrations.
    Migrate(migrate::MigrateArgs),
    /// Reconcile: records consumed against accepted, rejected, duplicates and suspense.
    Stats(stats::StatsArgs),
    /// The rating catalog: apply a file as a new version, show the active one.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Customers: generate synthetic ones or import a CSV file.
    #[command(subcommand)]
    Customers(customers::CustomersCommand),
    /// How a stored event's price was made: the record, its normalization, the tariff
    /// lines with their arithmetic, the result.
    Explain(explain::ExplainArgs),
    /// Close a billing month and issue its invoices (Postgres, JSON, PDF).
    Bill(bill::BillArgs),
    /// Rewind a consumer group's stored offsets to process a range again (optionally
    /// re-pricing what was already accepted).
    Replay(replay::ReplayArgs),
    /// Everything end to end on a fresh database: migrate, catalog, customers, a month of
    /// CDRs with anomalies, the daemon until drained, suspense, the month's invoices, and
    /// a summary (reconciliation, revenue, invoices, throughput, where to look).
    Demo(demo::DemoArgs),
    /// Reports (revenue, ARPU, RFM, profitability, usage, data quality, late usage) as a
    /// table, CSV or JSON; `--list` names them.
    Report(report::ReportArgs),
}

/// Shared database flag. The URL may hold a password: its environment value is never
/// shown in `--help`, and cdrflow never logs it.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL.
    #[arg(
        long,
        env = "CDRFLOW_DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/cdrflow"
    )]
    pub database_url: String,
}

impl Command {
    /// Whether the command writes a report to stdout and talks to nothing but
    /// Postgres, so that its output may end early when the reader has had enough
    /// (`cdrflow stats | head`). Commands that hold broker connections keep SIGPIPE
    /// ignored: a write to a closed socket must be an error there, not the end.
    pub fn ends_with_its_reader(&self) -> bool {
        matches!(
            self,
            Command::Migrate(_)
                | Command::Stats(_)
                | Command::Catalog(_)
                | Command::Customers(_)
                | Command::Bill(_)
                | Command::Report(_)
        )
    }
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Generate(args) => generate::run(args).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::Stats(args) => stats::run(args).await,
        Command::Catalog(cmd) => catalog::run(cmd).await,
        Command::Customers(cmd) => customers::run(cmd).await,
        Command::Explain(args) => explain::run(args).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Bill(args) => bill::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Report(args) => report::run(args).await,
    }
}
