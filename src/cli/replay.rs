//! Placeholder until the replay helper writes this file.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {}
pub async fn run(_args: ReplayArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("replay is not built yet")
}
