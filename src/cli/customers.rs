//! `cdrflow customers generate` and `cdrflow customers import FILE.csv`: the subscribers
//! cdrflow bills. Either way, suspense records of the new customers are rated right
//! after (the daemon would also find them within seconds).

use super::DatabaseArgs;
use crate::domain::catalog::Catalog;
use crate::domain::NumberPlan;
use crate::generator::{customer_pool_on, Customer};
use crate::storage::{self, customers::OnExisting};
use anyhow::Context as _;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum CustomersCommand {
    /// Create N synthetic customers (fake names, plans of the active catalog, regions,
    /// students, activation dates over eight years, credit limits). The same seed gives
    /// the same customers as `cdrflow generate --seed`; existing ones are left as they are.
    Generate {
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        count: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Import customers from a CSV file with the header
    /// `msisdn,name,plan,region,student,activated_on,credit_limit` (the last four may be
    /// empty). The whole file is checked first: any bad line refuses the import, with
    /// every problem listed. Existing customers (same MSISDN) are updated.
    Import {
        file: PathBuf,
        /// Region whose national numbers the file may use (ISO 3166 alpha-2).
        #[arg(long, env = "CDRFLOW_DEFAULT_REGION", default_value = "MA")]
        default_region: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

pub async fn run(cmd: CustomersCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CustomersCommand::Generate { count, seed, db } => {
            let (pool, catalog) = prepare(&db).await?;
            let plans: Vec<&str> = catalog.catalog.plans.keys().map(String::as_str).collect();
            let customers = customer_pool_on(seed, count as usize, &plans);
            let done =
                storage::customers::upsert(&**pool.get().await?, &customers, OnExisting::Keep)
                    .await?;
            println!(
                "customers: {} generated (seed {seed}), {} new in the database",
                customers.len(),
                done.added
            );
            resolve(&pool, &catalog).await?;
            Ok(ExitCode::SUCCESS)
        }
        CustomersCommand::Import {
            file,
            default_region,
            db,
        } => {
            let numbers = NumberPlan::new(&default_region)
                .map_err(|e| anyhow::anyhow!("--default-region: {e}"))?;
            let text = std::fs::read(&file)
                .with_context(|| format!("Failed to read {}", file.display()))?;
            let (pool, catalog) = prepare(&db).await?;
            let today = chrono::Utc::now().date_naive();
            let customers = match parse_csv(&text, &numbers, &catalog.catalog, today) {
                Ok(c) => c,
                Err(problems) => {
                    eprintln!(
                        "{}: refused, nothing imported ({} problem(s)):",
                        file.display(),
                        problems.len()
                    );
                    for p in problems {
                        eprintln!("  {p}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
            };
            let done =
                storage::customers::upsert(&**pool.get().await?, &customers, OnExisting::Update)
                    .await?;
            println!(
                "customers: {} read from {}, {} added, {} updated, {} unchanged",
                customers.len(),
                file.display(),
                done.added,
                done.updated,
                customers.len() as u64 - done.added - done.updated
            );
            resolve(&pool, &catalog).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn prepare(
    db: &DatabaseArgs,
) -> anyhow::Result<(deadpool_postgres::Pool, storage::catalog::Version)> {
    storage::migrate(&db.database_url)
        .await
        .context("Failed to prepare the database")?;
    let pool = storage::pool(&db.database_url, 1)?;
    let client = pool.get().await?;
    let catalog = storage::catalog::load(&**client, None).await?.ok_or_else(|| {
        anyhow::anyhow!("no catalog has been applied: customers need its plans (cdrflow catalog apply FILE)")
    })?;
    drop(client);
    Ok((pool, catalog))
}

async fn resolve(
    pool: &deadpool_postgres::Pool,
    catalog: &storage::catalog::Version,
) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    let done = storage::suspense::resolve(&mut client, catalog).await?;
    println!(
        "suspense: {} record(s) rated, {} already stored, {} still held (unratable)",
        done.rated, done.duplicates, done.unratable
    );
    Ok(())
}

#[derive(Debug, Deserialize)]
struct Row {
    msisdn: String,
    name: String,
    plan: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    student: Option<String>,
    #[serde(default)]
    activated_on: Option<String>,
    #[serde(default)]
    credit_limit: Option<String>,
}

/// Every line checked; all problems reported, each with its line number.
fn parse_csv(
    text: &[u8],
    numbers: &NumberPlan,
    catalog: &Catalog,
    today: NaiveDate,
) -> Result<Vec<Customer>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text);
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let mut seen = std::collections::HashMap::new();
    let regions: std::collections::BTreeSet<&str> =
        catalog.regions.values().map(String::as_str).collect();
    for (i, row) in reader.deserialize::<Row>().enumerate() {
        // Line 1 is the header.
        let line = row
            .as_ref()
            .err()
            .and_then(|e| e.position().map(|p| p.line()))
            .unwrap_or(i as u64 + 2);
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let mut bad = |what: String| problems.push(format!("line {line}: {what}"));
        let msisdn = match numbers.parse(&row.msisdn) {
            Ok(n) => n.msisdn.as_str().to_string(),
            Err(e) => {
                bad(format!("msisdn {:?}: {}", row.msisdn, e.detail));
                continue;
            }
        };
        if let Some(first) = seen.insert(msisdn.clone(), line) {
            bad(format!("msisdn {msisdn} is already on line {first}"));
        }
        if row.name.is_empty() {
            bad("name is empty".into());
        }
        if catalog.plan(&row.plan).is_none() {
            bad(format!(
                "plan {:?} is not in the active catalog ({})",
                row.plan,
                catalog.plans.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let region = row.region.filter(|r| !r.is_empty());
        if let Some(r) = &region {
            if !regions.contains(r.as_str()) {
                bad(format!("region {r:?} is not one of the catalog's regions"));
            }
        }
        let is_student = match row
            .student
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase()
            .as_str()
        {
            "" | "false" | "no" | "0" => false,
            "true" | "yes" | "1" => true,
            other => {
                bad(format!(
                    "student must be true/false, yes/no or 1/0, got {other:?}"
                ));
                false
            }
        };
        let activated_on = match row.activated_on.as_deref().filter(|s| !s.is_empty()) {
            None => today,
            Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap_or_else(|_| {
                bad(format!("activated_on must be YYYY-MM-DD, got {d:?}"));
                today
            }),
        };
        let credit_limit = match row.credit_limit.as_deref().filter(|s| !s.is_empty()) {
            None => Decimal::new(500, 0),
            Some(t) => match t.parse::<Decimal>() {
                Ok(d) if !d.is_sign_negative() && d.scale() <= 2 => d,
                _ => {
                    bad(format!("credit_limit must be a non-negative amount with at most 2 decimals, got {t:?}"));
                    Decimal::ZERO
                }
            },
        };
        out.push(Customer {
            msisdn,
            name: row.name,
            plan: row.plan,
            region,
            is_student,
            activated_on,
            credit_limit,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::tests::default_catalog;

    fn parse(text: &str) -> Result<Vec<Customer>, Vec<String>> {
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        parse_csv(
            text.as_bytes(),
            &NumberPlan::new("MA").unwrap(),
            &default_catalog(),
            today,
        )
    }

    const HEADER: &str = "msisdn,name,plan,region,student,activated_on,credit_limit\n";

    #[test]
    fn a_good_file_is_read_with_numbers_in_e164_and_defaults_for_empty_fields() {
        let c = parse(&format!("{HEADER}0612345678,Amina Idrissi,student,Casablanca-Settat,yes,2020-09-01,150\n+212661234567,Omar Benali,business,,,,\n")).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].msisdn, "+212612345678");
        assert!(c[0].is_student);
        assert_eq!(
            c[0].activated_on,
            NaiveDate::from_ymd_opt(2020, 9, 1).unwrap()
        );
        assert_eq!(c[0].credit_limit, Decimal::new(150, 0));
        assert_eq!(c[1].region, None);
        assert_eq!(
            c[1].activated_on,
            NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
        );
        assert_eq!(c[1].credit_limit, Decimal::new(500, 0));
    }

    #[test]
    fn every_bad_line_is_reported_with_its_line_number() {
        let p = parse(&format!(
            "{HEADER}abcde,X,basic,,,,\n0612345678,Y,gold,,,,\n0612345679,Z,basic,Atlantis,maybe,2020-13-01,-5\n0612345678,W,basic,,,,\n"
        ))
        .unwrap_err();
        let text = p.join("\n");
        assert!(text.contains("line 2: msisdn \"abcde\""), "{text}");
        assert!(
            text.contains("line 3: plan \"gold\" is not in the active catalog"),
            "{text}"
        );
        assert!(text.contains("line 4: region \"Atlantis\""), "{text}");
        assert!(text.contains("line 4: student must be"), "{text}");
        assert!(
            text.contains("line 4: activated_on must be YYYY-MM-DD"),
            "{text}"
        );
        assert!(text.contains("line 4: credit_limit must be"), "{text}");
        assert!(
            text.contains("line 5: msisdn +212612345678 is already on line 3"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_column_is_reported() {
        let p = parse("msisdn,name\n0612345678,X\n").unwrap_err();
        assert!(p[0].contains("line 2") && p[0].contains("plan"), "{p:?}");
    }
}
