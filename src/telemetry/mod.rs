//! Logs and metrics: tracing set-up here, the Prometheus registry in `metrics`, and the
//! events that feed both in `events`.

pub mod events;
pub mod metrics;

pub use metrics::Metrics;

/// Structured logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
