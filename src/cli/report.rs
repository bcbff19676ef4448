//! `cdrflow report NAME`: one of the reports of `docs/reports.md` as an aligned table,
//! CSV or JSON, to the terminal or a file; `--list` names them with their filters, and
//! `--refresh` recomputes the aggregates they read (the daemon does it on a timer).

use super::DatabaseArgs;
use crate::storage::{self, reports};
use anyhow::Context as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The report to run; `--list` names them all.
    #[arg(required_unless_present_any = ["list", "refresh"])]
    pub name: Option<String>,
    /// List the reports with the filters each accepts.
    #[arg(long, conflicts_with = "name")]
    pub list: bool,
    /// Recompute the report aggregates of the periods and days that changed first (the
    /// daemon does it every --report-refresh-secs, and `cdrflow bill` after invoicing).
    #[arg(long)]
    pub refresh: bool,
    /// With --refresh: recompute every period and day, changed or not.
    #[arg(long, requires = "refresh")]
    pub full: bool,
    /// Billing month, YYYY-MM.
    #[arg(long, value_name = "YYYY-MM")]
    pub period: Option<String>,
    /// voice, sms or data.
    #[arg(long)]
    pub service: Option<String>,
    /// Customers' home region, as the catalog names it.
    #[arg(long)]
    pub region: Option<String>,
    /// Plan id, as the catalog names it.
    #[arg(long)]
    pub plan: Option<String>,
    /// Rows at most, for customer-level reports (default 100).
    #[arg(long)]
    pub limit: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

pub async fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        return emit(&args, list(args.format).into_bytes());
    }
    // Check what was asked before touching the database.
    let asked = match &args.name {
        Some(name) => {
            let Some(report) = reports::find(name) else {
                eprintln!("error: {}", reports::ReportError::Unknown(name.clone()));
                return Ok(ExitCode::from(2));
            };
            let params = reports::Params {
                period: args.period.clone(),
                service: args.service.clone(),
                region: args.region.clone(),
                plan: args.plan.clone(),
                limit: args.limit.clone(),
            };
            match report.query(&params) {
                Ok(q) => Some((report, q)),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(2));
                }
            }
        }
        None => None,
    };
    let client = storage::connect(&args.db.database_url).await?;
    if args.refresh {
        let Some(catalog) = storage::catalog::load(&client, None).await? else {
            anyhow::bail!("no catalog applied: the reports' time zone is the catalog's");
        };
        let done = reports::refresh(&client, catalog.catalog.operator.timezone.name(), args.full)
            .await
            .context("Failed to refresh the report aggregates")?;
        eprintln!("Report aggregates refreshed in {done}.");
    }
    let Some((report, q)) = asked else {
        return Ok(ExitCode::SUCCESS);
    };
    let table = reports::run(&client, report, &q)
        .await
        .with_context(|| format!("Failed to run report {}", report.name))?;
    let bytes = match args.format {
        Format::Table => table.to_table().into_bytes(),
        Format::Csv => table.to_csv(),
        Format::Json => {
            let mut b = serde_json::to_vec_pretty(&table)?;
            b.push(b'\n');
            b
        }
    };
    emit(&args, bytes)
}

fn emit(args: &ReportArgs, bytes: Vec<u8>) -> anyhow::Result<ExitCode> {
    match &args.output {
        Some(path) => {
            std::fs::write(path, &bytes)
                .with_context(|| format!("Failed to write {}", path.display()))?;
            eprintln!("Wrote {} ({} bytes).", path.display(), bytes.len());
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn list(format: Format) -> String {
    let rows = reports::REPORTS.iter();
    match format {
        Format::Json => {
            let list: Vec<_> = rows.map(|r| r.describe()).collect();
            serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
        }
        Format::Csv => {
            let mut out = String::from("name,filters,title\n");
            for r in rows {
                out += &format!(
                    "{},{},{}\n",
                    r.name,
                    r.accepted().replace(", ", " "),
                    r.title
                );
            }
            out
        }
        Format::Table => {
            let width = reports::REPORTS
                .iter()
                .map(|r| r.name.len())
                .max()
                .unwrap_or(0);
            let mut out = String::new();
            for r in rows {
                out += &format!(
                    "{:<width$}  {}\n{:<width$}  filters: {}{}\n",
                    r.name,
                    r.title,
                    "",
                    r.accepted(),
                    if r.latest {
                        " (without --period: the latest month with usage)"
                    } else {
                        ""
                    }
                );
            }
            out
        }
    }
}
