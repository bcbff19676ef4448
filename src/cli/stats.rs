//! `cdrflow stats`: per topic and partition, records consumed = accepted + rejected (by
//! reason) + duplicates + suspense, with the stored offsets and the records lost in gaps
//! (deleted on the broker before they were read). Exits 3 unless everything balances.

use super::DatabaseArgs;
use crate::storage::{self, stats};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Consumer group whose processing to reconcile.
    #[arg(long, env = "CDRFLOW_GROUP", default_value = "cdrflow")]
    pub group: String,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub async fn run(args: StatsArgs) -> anyhow::Result<ExitCode> {
    let client = storage::connect(&args.db.database_url).await?;
    let s = stats::load(&client, &args.group).await?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&s)?),
        Format::Table => print!("{}", table(&s)),
    }
    Ok(if s.balanced {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn table(s: &stats::Stats) -> String {
    let mut reasons: Vec<&String> = s.totals.rejected.keys().collect();
    reasons.sort();
    let mut out = format!("group {}\n", s.group);
    out += &format!(
        "{:<16} {:>4} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}  {}\n",
        "topic",
        "part",
        "consumed",
        "accepted",
        "rejected",
        "duplicate",
        "suspense",
        "lost",
        "next_offset",
        "balanced"
    );
    let row =
        |topic: &str, part: &str, o: &stats::Outcomes, lost: i64, offset: String, ok: bool| {
            format!(
                "{:<16} {:>4} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}  {}\n",
                topic,
                part,
                o.consumed,
                o.accepted,
                o.rejected_total(),
                o.duplicates,
                o.suspense,
                lost,
                offset,
                if ok { "yes" } else { "NO" }
            )
        };
    for p in &s.partitions {
        out += &row(
            &p.topic,
            &p.partition.to_string(),
            &p.outcomes,
            p.lost_records,
            p.stored_offset.map_or("-".into(), |o| o.to_string()),
            p.balanced,
        );
    }
    out += &row(
        "total",
        "",
        &s.totals,
        s.lost_records,
        String::new(),
        s.balanced,
    );
    if !s.gaps.is_empty() {
        out += "\ngaps: records deleted on the broker before they were read (recover them from the switch)\n";
        for g in &s.gaps {
            out += &format!(
                "  {} partition {}: offsets {}..{} ({} records), detected {}\n",
                g.topic,
                g.partition,
                g.from_offset,
                g.to_offset,
                g.to_offset - g.from_offset,
                g.detected_at.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
    }
    if !reasons.is_empty() {
        out += "\nrejected by reason\n";
        for r in reasons {
            out += &format!("  {:<22} {:>10}\n", r, s.totals.rejected[r]);
        }
    }
    let r = &s.stored_rows;
    out += &format!(
        "\nrows stored: usage_events {} ({} unrated), rejected_records {}, suspense_records {} ({} still held, {} released)\n",
        r.usage_events,
        r.usage_unrated,
        r.rejected_records,
        r.suspense_records,
        r.suspense_held,
        r.suspense_records - r.suspense_held
    );
    out += &format!(
        "rated amount: {} (before allowances, discounts and taxes)\n",
        crate::domain::rating::fixed(r.usage_amount)
    );
    out
}
