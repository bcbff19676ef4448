//! `cdrflow explain RECORD_ID`: what a customer-care agent reads out when a customer
//! disputes a charge — the record as received, its normalization, the tariff lines with
//! their arithmetic and the result. The arithmetic is recomputed from the stored event
//! with the catalog version and plan it was priced with, and checked against the stored
//! amount, so the explanation cannot drift from the bill.

use super::DatabaseArgs;
use crate::domain::rating::{self, fixed};
use crate::kafka::fetch;
use crate::storage::{self, explain};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The event's record_id (its own id, or the `fp-…` fingerprint).
    pub record_id: String,
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Kafka bootstrap servers, to read the record as received back from its topic.
    #[arg(long, env = "CDRFLOW_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Do not ask the broker for the original bytes.
    #[arg(long)]
    pub no_broker: bool,
}

pub async fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let client = storage::connect(&args.db.database_url).await?;
    let id = args.record_id.as_str();
    let mut out = String::new();
    if let Some(e) = explain::event(&client, id).await? {
        let raw = match (&e.raw, args.no_broker) {
            (Some(raw), _) => Some(raw.clone()),
            (None, true) => None,
            (None, false) => fetch::record_at(
                &args.brokers,
                &e.src_topic,
                e.src_partition,
                e.src_offset,
                Duration::from_secs(5),
            )
            .await
            .unwrap_or(None),
        };
        let _ = writeln!(out, "Event {id}");
        let _ = writeln!(
            out,
            "Customer {} ({}), {}",
            e.customer_id, e.customer_name, e.cdr.subscriber
        );
        let _ = writeln!(
            out,
            "\n1. As received ({} partition {} offset {}, broker time {}):",
            e.src_topic,
            e.src_partition,
            e.src_offset,
            e.kafka_ts.map_or("-".into(), |t| t.to_rfc3339())
        );
        let _ = writeln!(
            out,
            "   {}",
            match &raw {
                Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                None => "(not available: the broker no longer holds it or did not answer)".into(),
            }
        );
        let c = &e.cdr;
        let _ = writeln!(
            out,
            "\n2. Normalized (stored {}):",
            e.ingested_at.to_rfc3339()
        );
        let _ = writeln!(
            out,
            "   {} by {} at {} UTC",
            c.record_type.as_str(),
            c.subscriber,
            c.event_time.format("%Y-%m-%d %H:%M:%S")
        );
        if let Some(p) = &c.peer {
            let _ = writeln!(
                out,
                "   peer {p} ({}, {})",
                c.peer_class.map_or("-", |k| k.as_str()),
                c.peer_country.as_deref().unwrap_or("-")
            );
        }
        match c.record_type {
            crate::domain::RecordType::Voice => {
                let _ = writeln!(out, "   duration {} s", c.duration_sec.unwrap_or(0));
            }
            crate::domain::RecordType::Data => {
                let _ = writeln!(
                    out,
                    "   volume {} bytes, session {} s",
                    c.volume_bytes.unwrap_or(0),
                    c.session_duration_sec.unwrap_or(0)
                );
            }
            crate::domain::RecordType::Sms => {}
        }
        let _ = writeln!(
            out,
            "   cell {} → {} / {}, {}{}",
            c.cell_id,
            c.city.as_deref().unwrap_or("?"),
            c.region,
            c.technology.as_str(),
            c.roaming_country
                .as_deref()
                .map_or(String::new(), |r| format!(", roaming in {r}"))
        );

        let _ = writeln!(out, "\n3. Rating:");
        let (Some(version), Some(plan), Some(stored)) =
            (e.catalog_version, e.plan.as_deref(), e.amount)
        else {
            let _ = writeln!(out, "   not rated (stored before rating existed)");
            print!("{out}");
            return Ok(ExitCode::SUCCESS);
        };
        let Some(catalog) = storage::catalog::load(&client, Some(version)).await? else {
            anyhow::bail!("catalog version {version} that priced this event is missing");
        };
        let mut matches = true;
        match rating::rate(&catalog.catalog, plan, c) {
            Ok(r) => {
                let _ = writeln!(out, "   catalog version {version} ({})", catalog.label);
                for line in r.explain(&catalog.catalog) {
                    let _ = writeln!(out, "   {line}");
                }
                if r.amount == stored {
                    let _ = writeln!(out, "   = the stored amount {} ✓", fixed(stored));
                } else {
                    matches = false;
                    let _ = writeln!(out, "   ! the stored amount is {}, not {}: the catalog or plan data changed since", fixed(stored), fixed(r.amount));
                }
            }
            Err(err) => {
                matches = false;
                let _ = writeln!(out, "   cannot be recomputed: {err}");
            }
        }
        let adjustments = explain::adjustments(&client, id).await?;
        if !adjustments.is_empty() {
            let _ = writeln!(out, "\n4. Re-rating history:");
            for a in adjustments {
                let _ = writeln!(
                    out,
                    "   {} catalog v{}: {} → {} ({}{}) {}",
                    a.created_at.format("%Y-%m-%d %H:%M"),
                    a.catalog_version,
                    fixed(a.old_amount),
                    fixed(a.new_amount),
                    if a.delta.is_sign_negative() { "" } else { "+" },
                    fixed(a.delta),
                    if a.in_place {
                        "updated in place (open period)".to_string()
                    } else {
                        format!(
                            "owed as an adjustment: period {} was closed",
                            a.period.format("%Y-%m")
                        )
                    }
                );
            }
        }
        print!("{out}");
        return Ok(if matches {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        });
    }
    if let Some(h) = explain::held(&client, id).await? {
        let _ = writeln!(
            out,
            "Event {id} is held in suspense since {}: {}",
            h.created_at.to_rfc3339(),
            h.reason
        );
        let _ = writeln!(
            out,
            "\n1. As received ({} partition {} offset {}):\n   {}",
            h.src_topic,
            h.src_partition,
            h.src_offset,
            String::from_utf8_lossy(&h.raw)
        );
        let _ = writeln!(out, "\n2. Normalized:\n   {}", h.normalized);
        let _ = writeln!(out, "\n3. Rating: not yet — it is rated once its subscriber is a customer (cdrflow customers import).");
        print!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("no stored event has record_id {id:?} (rejected records have no record_id: see rejected_records)");
    Ok(ExitCode::FAILURE)
}
