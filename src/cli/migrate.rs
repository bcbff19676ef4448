//! `cdrflow migrate`: create the database if it is missing and bring its schema up to date.

use super::DatabaseArgs;
use crate::storage;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let applied = storage::migrate(&args.db.database_url).await?;
    println!("schema up to date ({applied} migration(s) applied now)");
    Ok(ExitCode::SUCCESS)
}
