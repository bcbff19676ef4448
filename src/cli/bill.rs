//! `cdrflow bill --period YYYY-MM`: close a billing period and issue its invoices, and
//! optionally write each as JSON and PDF into a folder. Running it again issues only
//! what is missing (nothing, once a period is done) and writes the same files.

use super::DatabaseArgs;
use crate::domain::billing::{self, Invoice};
use crate::render::pdf::invoice_pdf;
use crate::storage::reports;
use crate::storage::{self, invoices};
use anyhow::Context as _;
use chrono::NaiveDate;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

fn parse_period(s: &str) -> Result<NaiveDate, String> {
    billing::parse_period(s).ok_or_else(|| format!("{s:?} is not a month written YYYY-MM"))
}

#[derive(Debug, clap::Args)]
pub struct BillArgs {
    /// The billing month, YYYY-MM (operator time).
    #[arg(long, value_parser = parse_period)]
    pub period: NaiveDate,
    /// Write every invoice of the period as NUMBER.json and NUMBER.pdf into this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// With --out, write the JSON only.
    #[arg(long)]
    pub no_pdf: bool,
    /// Close the month even though it has not ended yet (every later event of it then
    /// becomes late usage, billed on the next invoice).
    #[arg(long)]
    pub force: bool,
    /// Do not refresh the report aggregates after issuing invoices (the daemon refreshes
    /// them on its own; `cdrflow report --refresh` does it by hand). On a year of usage a
    /// refresh takes minutes on a long history (docs/performance.md).
    #[arg(long)]
    pub no_report_refresh: bool,
    /// Customers invoiced per transaction.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub chunk: i64,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

pub async fn run(args: BillArgs) -> anyhow::Result<ExitCode> {
    storage::migrate(&args.db.database_url)
        .await
        .context("Failed to migrate the database")?;
    let pool = storage::pool(&args.db.database_url, 2)?;
    let mut client = pool
        .get()
        .await
        .context("Failed to connect to PostgreSQL")?;
    let catalog = storage::catalog::load(&**client, None)
        .await?
        .context("no rating catalog has been applied to this database")?;
    let tz = catalog.catalog.operator.timezone;
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let end = billing::period_end(args.period);
    if end >= today && !args.force {
        anyhow::bail!(
            "{} has not ended yet (its last day is {end}, {tz}): closing it now would bill the rest of its usage as late usage on the next invoice; wait, or pass --force",
            args.period.format("%Y-%m")
        );
    }
    let started = Instant::now();
    let report = invoices::bill_period(&mut client, &catalog, args.period, args.chunk).await?;
    let billing_secs = started.elapsed().as_secs_f64();
    println!(
        "period {}: {} ({} invoices issued now, {} before; {} adjustments from earlier periods) in {:.1} s",
        args.period.format("%Y-%m"),
        if report.closed_now { "closed now" } else { "was closed" },
        report.issued,
        report.existing,
        report.adjustments,
        billing_secs
    );
    // The reports show the new invoices now rather than at the daemon's next refresh;
    // a run that issued nothing (the period was done) changed nothing to show.
    if report.closed_now || report.issued > 0 {
        if args.no_report_refresh {
            println!("report aggregates not refreshed (--no-report-refresh): `cdrflow report --refresh` or the daemon's next refresh shows these invoices");
        } else {
            match reports::refresh(&**client, catalog.catalog.operator.timezone.name(), false).await {
                // Not "in N s": scripts read the billing time from the line above that way.
                Ok(done) => println!("report aggregates refreshed ({done})"),
                Err(e) => eprintln!("warning: the invoices are issued, but refreshing the report aggregates failed ({e}); `cdrflow report --refresh` retries it"),
            }
        }
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("Failed to create {}", dir.display()))?;
        let started = Instant::now();
        let (json, pdf) = write_files(&client, args.period, dir, !args.no_pdf, |_| {}).await?;
        println!(
            "wrote {json} JSON and {pdf} PDF invoices to {} in {:.1} s",
            dir.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Write every invoice of `period` to `dir` as NUMBER.json (the stored document, byte for
/// byte) and, with `pdf`, NUMBER.pdf; `progress` is told the count after each page of
/// invoices. Returns (JSON files, PDF files).
pub async fn write_files(
    client: &tokio_postgres::Client,
    period: NaiveDate,
    dir: &Path,
    pdf: bool,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<(u64, u64)> {
    let (mut json, mut pdfs) = (0_u64, 0_u64);
    let mut after = 0_i64;
    loop {
        let page = invoices::documents_page(client, period, after).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for stored in &page {
            let number = &stored.number;
            std::fs::write(dir.join(format!("{number}.json")), &stored.document)
                .with_context(|| format!("Failed to write {number}.json"))?;
            json += 1;
            if pdf {
                let invoice: Invoice = serde_json::from_str(&stored.document)
                    .with_context(|| format!("stored invoice {number} does not decode"))?;
                let bytes = invoice_pdf(&invoice)
                    .with_context(|| format!("Failed to render {number}.pdf"))?;
                std::fs::write(dir.join(format!("{number}.pdf")), bytes)
                    .with_context(|| format!("Failed to write {number}.pdf"))?;
                pdfs += 1;
            }
        }
        progress(json);
    }
    Ok((json, pdfs))
}
