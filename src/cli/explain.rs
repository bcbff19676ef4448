//! `cdrflow explain RECORD_ID`: what a customer-care agent reads out when a customer
//! disputes a charge. This reads the event (and the original bytes back from the broker
//! when Postgres does not hold them); [`render::explain`] writes the text. Exit status 3
//! when recomputing the price does not give the stored amount.

use super::DatabaseArgs;
use crate::kafka::{fetch, KafkaSettings};
use crate::render;
use crate::storage::{self, explain};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The event's record_id (its own id, or the `fp-…` fingerprint).
    pub record_id: String,
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The brokers, to read the record as received back from its topic.
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// Do not ask the broker for the original bytes.
    #[arg(long)]
    pub no_broker: bool,
}

pub async fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let client = storage::connect(&args.db.database_url).await?;
    let id = args.record_id.as_str();
    if let Some(e) = explain::event(&client, id).await? {
        let raw = match (&e.raw, args.no_broker) {
            (Some(raw), _) => Some(raw.clone()),
            (None, true) => None,
            (None, false) => fetch::record_at(
                &args.kafka,
                &e.src_topic,
                e.src_partition,
                e.src_offset,
                Duration::from_secs(5),
            )
            .await
            .unwrap_or(None),
        };
        let catalog = match (e.catalog_version, e.amount) {
            (Some(version), Some(_)) => storage::catalog::load(&client, Some(version)).await?,
            _ => None,
        };
        let adjustments = explain::adjustments(&client, id).await?;
        let (out, matches) =
            render::explain::stored_event(id, &e, raw.as_deref(), catalog.as_ref(), &adjustments);
        print!("{out}");
        return Ok(if matches {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        });
    }
    if let Some(h) = explain::held(&client, id).await? {
        print!("{}", render::explain::held(id, &h));
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("no stored event has record_id {id:?} (rejected records have no record_id: see rejected_records)");
    Ok(ExitCode::FAILURE)
}
