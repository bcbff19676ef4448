//! `cdrflow retention --keep-months N`: archives the usage and rejects of the months before
//! the kept ones to gzip CSV files with a manifest, checks each archive by reading it
//! back, and drops the month (its usage partition, record ids and rejects). A month that
//! is not billed, or that may still receive usage, stays and is named. Exits 1 when a
//! month stayed for such a reason, 0 when every older month went (or would, with
//! --dry-run).

use super::DatabaseArgs;
use crate::storage::{self, retention};
use anyhow::Context as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    /// Months kept before the current one; older months go.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1200))]
    pub keep_months: u32,
    /// Directory the months are archived to (created if missing): per month
    /// usage_events-YYYY-MM.csv.gz, rejected_records-YYYY-MM.csv.gz and
    /// YYYY-MM.manifest.json with rows and SHA-256 checksums.
    #[arg(long, value_name = "DIR", required_unless_present_any = ["no_archive", "dry_run"], conflicts_with = "no_archive")]
    pub archive: Option<PathBuf>,
    /// Drop the months without archiving them.
    #[arg(long)]
    pub no_archive: bool,
    /// Show what would go and what stays, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The daemon's --max-event-age-days: a month stays until its end is this many days
    /// in the past, since usage of it may still arrive until then.
    #[arg(long, env = "CDRFLOW_MAX_EVENT_AGE_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub max_event_age_days: u32,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

pub async fn run(args: RetentionArgs) -> anyhow::Result<ExitCode> {
    let mut client = storage::connect(&args.db.database_url).await?;
    let Some(catalog) = storage::catalog::load(&client, None).await? else {
        anyhow::bail!(
            "no catalog applied: months begin at the midnight of the catalog's time zone"
        );
    };
    let policy = retention::Policy {
        keep_months: args.keep_months,
        max_event_age_days: args.max_event_age_days,
        timezone: catalog.catalog.operator.timezone,
    };
    let now = chrono::Utc::now();
    let months = retention::months(&client, &policy, now)
        .await
        .context("Failed to list the months to drop")?;
    let today = now.with_timezone(&policy.timezone).date_naive();
    println!(
        "keeping {} and later; older months: {}",
        retention::first_kept(today, policy.keep_months).format("%Y-%m"),
        months.len()
    );
    let mut stayed = 0;
    for month in &months {
        let name = month.period.format("%Y-%m");
        let rows = format!(
            "{} usage rows, {} rejects",
            month.usage_rows, month.reject_rows
        );
        if let Some(why) = &month.refusal {
            stayed += 1;
            println!("{name}  {rows}  stays: {why}");
            continue;
        }
        if args.dry_run {
            println!("{name}  {rows}  would go");
            continue;
        }
        let archive =
            retention::archive_and_drop(&mut client, &policy, month, args.archive.as_deref())
                .await
                .with_context(|| format!("Failed to archive and drop {name}"))?;
        match archive {
            Some(manifest) => println!(
                "{name}  {rows}  archived ({}) and dropped",
                manifest.display()
            ),
            None => println!("{name}  {rows}  dropped without archive"),
        }
    }
    Ok(if stayed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
