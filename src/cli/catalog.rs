//! `cdrflow catalog apply FILE` and `cdrflow catalog show`: the versioned rating catalog.

use super::DatabaseArgs;
use crate::domain::catalog::{Catalog, ZoneKind};
use crate::storage::{self, catalog::Applied};
use anyhow::Context as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum CatalogCommand {
    /// Check a catalog file and store it as the next version (the daemon picks it up
    /// within seconds; events already stored keep their price unless re-rated).
    Apply {
        /// The catalog file (TOML; see docs/catalog.md).
        file: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Check a catalog file without storing anything.
    Check { file: PathBuf },
    /// Print the active catalog (or another version).
    Show {
        /// A version number; the active (highest) one by default.
        #[arg(long)]
        version: Option<i32>,
        /// Print the stored file exactly as it was applied instead of a summary.
        #[arg(long)]
        source: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

pub async fn run(cmd: CatalogCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CatalogCommand::Apply { file, db } => {
            let text = read(&file)?;
            storage::migrate(&db.database_url).await?;
            let mut client = storage::connect(&db.database_url).await?;
            match storage::catalog::apply(&mut client, &text).await {
                Ok(Applied::New { version }) => {
                    println!("catalog {} applied as version {version}", file.display())
                }
                Ok(Applied::Unchanged { version }) => println!(
                    "catalog {} is already the active version {version}; nothing stored",
                    file.display()
                ),
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    return Ok(ExitCode::FAILURE);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::Check { file } => {
            let text = read(&file)?;
            match Catalog::parse(&text) {
                Ok(c) => {
                    println!(
                        "{}: valid ({} plans, {} zones, {} bands)",
                        file.display(),
                        c.plans.len(),
                        c.zones.len(),
                        c.bands.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        CatalogCommand::Show {
            version,
            source,
            db,
        } => {
            let client = storage::connect(&db.database_url).await?;
            let Some(v) = storage::catalog::load(&client, version).await? else {
                eprintln!(
                    "{}",
                    match version {
                        Some(n) => format!("there is no catalog version {n}"),
                        None => "no catalog has been applied yet (cdrflow catalog apply FILE)"
                            .to_string(),
                    }
                );
                return Ok(ExitCode::FAILURE);
            };
            if source {
                let source = storage::catalog::source(&client, v.version).await?;
                print!("{source}");
            } else {
                print!("{}", summary(&v));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read(file: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("Failed to read {}", file.display()))
}

/// A readable summary: operator, bands, zones, plans with allowances and every price.
fn summary(v: &storage::catalog::Version) -> String {
    use std::fmt::Write as _;
    let c = &v.catalog;
    let o = &c.operator;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "catalog version {} — {} (applied {}, sha256 {})",
        v.version,
        v.label,
        v.applied_at.format("%Y-%m-%d %H:%M:%S UTC"),
        &v.sha256[..12]
    );
    let _ = writeln!(
        s,
        "operator {}: currency {}, time zone {}, home {}, VAT {}, regulatory fee {}",
        o.name, o.currency, o.timezone, o.home_country, o.vat_rate, o.regulatory_fee
    );
    let _ = writeln!(
        s,
        "discounts: student {}, loyalty {} after {} months",
        c.discounts.student, c.discounts.loyalty, c.discounts.loyalty_after_months
    );
    let _ = writeln!(s, "bands: {}", c.bands.join(", "));
    let _ = write!(s, "zones:");
    for z in &c.zones {
        let kind = match z.kind {
            ZoneKind::Domestic => "domestic",
            ZoneKind::International => "international",
            ZoneKind::Roaming => "roaming",
        };
        let _ = write!(s, " {} ({kind})", z.name);
    }
    let _ = writeln!(s);
    let regions: std::collections::BTreeSet<&String> = c.regions.values().collect();
    let _ = writeln!(
        s,
        "reference: {} regions, {} cities, {} cell prefixes",
        regions.len(),
        c.regions.len(),
        c.cells.len()
    );
    for p in c.plans.values() {
        let _ = writeln!(
            s,
            "\nplan {} — {} (monthly fee {} {})",
            p.code, p.name, p.monthly_fee, o.currency
        );
        for a in &p.allowances {
            let zones: Vec<&str> = a.zones.iter().map(|z| c.zone(*z).name.as_str()).collect();
            let (n, unit) = match a.service {
                crate::domain::RecordType::Voice => (a.units / 60, "min"),
                crate::domain::RecordType::Sms => (a.units, "SMS"),
                crate::domain::RecordType::Data => (a.units / 1024, "MB"),
            };
            let _ = writeln!(s, "  allowance: {n} {unit} free in {}", zones.join(", "));
        }
        let _ = writeln!(
            s,
            "  {:<28} {:>8} {}   wholesale  extras",
            "tariff",
            "unit",
            c.bands
                .iter()
                .map(|b| format!("{b:>10}"))
                .collect::<String>()
        );
        for (plan, t) in c.tariffs() {
            if plan.code != p.code {
                continue;
            }
            let mut extras = Vec::new();
            if let Some(ch) = t.charging {
                extras.push(format!("charging {ch}"));
            }
            if t.block_kb > 1 {
                extras.push(format!("per {} KB", t.block_kb));
            }
            if !t.connection_fee.is_zero() {
                extras.push(format!("connection {}", t.connection_fee));
            }
            if !t.minimum_charge.is_zero() {
                extras.push(format!("minimum {}", t.minimum_charge));
            }
            let prices: String = t.prices.iter().map(|p| format!("{p:>10}")).collect();
            let _ = writeln!(
                s,
                "  {:<28} {:>8} {prices}   {:>9}  {}",
                t.id,
                format!("/{}", t.unit()),
                t.wholesale,
                extras.join(", ")
            );
        }
    }
    s
}
