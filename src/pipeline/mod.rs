//! The supervised actor tree of `cdrflow run` and its start-up:
//!
//! ```text
//! KafkaSource ─send─► Validator ─send─► Normalizer ─send─► Rater ─send─► Committer ─► Postgres
//!   (system arbiter)  (mediation arbiter ──────────────────────────)  (one arbiter each;
//!                                                                      partition mod n)
//! SuspenseResolver (every few seconds: held records whose subscriber now exists)
//! ```
//! Each actor runs under an actix `Supervisor`, and a panic in a handler restarts it
//! (`supervision`). Acknowledgements travel back up as the answer to each `send()`; only
//! the source pulls.

pub mod accumulator;
pub mod biller;
pub mod committer;
pub mod faults;
pub mod messages;
pub mod rater;
pub mod reporter;
pub mod source;
pub mod stages;
pub mod supervision;
pub mod suspense;

use crate::domain::{NumberPlan, Validation};
use crate::http;
use crate::kafka::client;
use crate::kafka::publisher::Publisher;
use crate::retry::retry;
use crate::storage;
use crate::telemetry::Metrics;
use actix::{Arbiter, Supervisor};
use anyhow::Context as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use supervision::Supervision;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

pub use source::{SourceExit, SourceSettings};

/// Everything `cdrflow run` needs, validated before it gets here.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub source: SourceSettings,
    pub http: SocketAddr,
    pub publish: bool,
    pub normalized_topic: String,
    pub rejected_topic: String,
    /// Partitions for topics cdrflow creates because they are missing.
    pub topic_partitions: i32,
    pub validation: Validation,
    pub numbering_region: String,
    pub db_pool_size: usize,
    /// Committer actors; partitions are spread over them.
    pub committers: usize,
    /// How often held records are checked for a subscriber that now exists.
    pub suspense_interval: Duration,
    /// How often the rater looks for a newer catalog version.
    pub catalog_check: Duration,
    /// Billing accumulator shards.
    pub accumulators: usize,
    pub accumulator: accumulator::AccumulatorSettings,
    /// Close periods automatically this many days after they end.
    pub close_after_days: Option<u32>,
    /// How often the report aggregates are refreshed; None: never by this process.
    pub report_refresh: Option<Duration>,
}

/// How long start-up waits for Postgres and the broker before giving up.
const STARTUP_PATIENCE: Duration = Duration::from_secs(300);

/// From SIGTERM to the end of the process, at most: time for the batches in flight to
/// commit and for the last alerts and published records to go out, within the 10 s a
/// service manager commonly allows. What is not committed by then is read again from the
/// stored offsets by the next owner of its partition.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// Start-up: the schema, the topics, the pool and the catalog, each waited for with
/// back-off.
async fn start(
    settings: &RunSettings,
) -> anyhow::Result<(
    NumberPlan,
    deadpool_postgres::Pool,
    storage::catalog::Version,
)> {
    let s = &settings.source;
    let applied = retry("PostgreSQL", STARTUP_PATIENCE, || {
        storage::migrate(&s.database_url)
    })
    .await
    .context("Failed to migrate the database")?;
    info!(applied, "Database schema is up to date.");
    let plan = NumberPlan::new(&settings.numbering_region).map_err(anyhow::Error::msg)?;
    let mut topics = vec![s.topic.as_str()];
    if settings.publish {
        topics.extend([
            settings.normalized_topic.as_str(),
            settings.rejected_topic.as_str(),
        ]);
    }
    if let Some(alerts) = &settings.accumulator.alerts_topic {
        topics.push(alerts.as_str());
    }
    retry("the Kafka broker", STARTUP_PATIENCE, || {
        client::ensure_topics(&s.brokers, &topics, settings.topic_partitions)
    })
    .await
    .context("Failed to reach the Kafka broker")?;

    let pool = storage::pipeline_pool(&s.database_url, settings.db_pool_size)?;
    // A connection of its own, closed after: one taken from the pool here would have its
    // I/O task on this thread, which polls the consumer, and be reused by a committer.
    let catalog = {
        let client = retry("PostgreSQL", STARTUP_PATIENCE, || {
            storage::connect(&s.database_url)
        })
        .await?;
        storage::catalog::load(&client, None)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no rating catalog has been applied to this database: apply one first, e.g. `cdrflow catalog apply catalog/default.toml`"))?
    };
    if catalog.catalog.operator.timezone != settings.validation.timezone {
        warn!(
            timestamps = %settings.validation.timezone,
            catalog = %catalog.catalog.operator.timezone,
            "Timestamps without an offset are read in --timezone, but the catalog bills in another zone; check both."
        );
    }
    Ok((plan, pool, catalog))
}

/// `work`, unless a stop is asked for first.
async fn unless_stopped<T>(
    stop: &mut watch::Receiver<bool>,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        done = work => Some(done),
        _ = stop.wait_for(|stop| *stop) => None,
    }
}

/// Run the daemon until it is told to stop (SIGTERM/SIGINT) or, with `exit_when_idle`,
/// until the stream has gone quiet and everything is committed.
pub async fn run(settings: RunSettings, metrics: Metrics) -> anyhow::Result<SourceExit> {
    // Signals are listened for first: a daemon still waiting for Postgres or the broker
    // at start-up stops at once too.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let signals = actix::spawn(async move {
        wait_for_signal().await;
        info!("Signal received; shutting down gracefully.");
        let _ = shutdown_tx.send(true);
    });
    let mut stop_requested = shutdown_rx.clone();
    let Some(started) = unless_stopped(&mut stop_requested, start(&settings)).await else {
        info!("Stopped while starting.");
        signals.abort();
        return Ok(SourceExit::Shutdown);
    };
    let (plan, pool, catalog) = started?;
    let s = &settings.source;
    let producer = client::producer(&s.brokers).context("Failed to create the Kafka producer")?;
    let supervision = Supervision::new(metrics.clone());
    // Subscribed before any actor starts, so that an escalation is never missed.
    let mut fatal = supervision.fatal();
    let publisher = settings.publish.then(|| Publisher {
        producer: producer.clone(),
        normalized_topic: settings.normalized_topic.clone(),
        rejected_topic: settings.rejected_topic.clone(),
    });

    // CPU-bound mediation, rating and the database round trips each get a thread of their own,
    // so decoding the next batch overlaps with committing the previous one.
    let mediation = Arbiter::new();
    let storage_threads: Vec<Arbiter> = (0..settings.committers).map(|_| Arbiter::new()).collect();
    let catalog = Arc::new(catalog);
    // The accumulators share one thread: their work per batch is small next to a commit.
    let billing_thread = Arbiter::new();
    let accumulators: Vec<_> = (0..settings.accumulators)
        .map(|shard| {
            let (pool, catalog, producer, metrics) = (
                pool.clone(),
                catalog.clone(),
                producer.clone(),
                metrics.clone(),
            );
            let acc = accumulator::AccumulatorSettings {
                shard: (shard, settings.accumulators),
                ..settings.accumulator.clone()
            };
            let sup = supervision.clone();
            Supervisor::start_in_arbiter(&billing_thread.handle(), move |_| {
                accumulator::Accumulator::new(pool, catalog, acc, producer, metrics, sup)
            })
        })
        .collect();
    let known = Arc::new(crate::storage::billing::KnownBuckets::new(
        committer::KNOWN_BUCKETS,
    ));
    let committers: Vec<_> = storage_threads
        .iter()
        .map(|thread| {
            let (pool, group, publisher, metrics, accumulators, known, sup) = (
                pool.clone(),
                s.group.clone(),
                publisher.clone(),
                metrics.clone(),
                accumulators.clone(),
                known.clone(),
                supervision.clone(),
            );
            Supervisor::start_in_arbiter(&thread.handle(), move |_| {
                committer::Committer::new(
                    pool,
                    group,
                    publisher,
                    metrics,
                    accumulators,
                    known.clone(),
                    sup,
                )
            })
        })
        .collect();
    let committer_addrs = committers.clone();
    for c in &committers {
        supervision.watch("committer", c);
    }
    for a in &accumulators {
        supervision.watch("accumulator", a);
    }
    // The Rater gets a thread of its own: on the mediation thread its lookups' results
    // waited behind every batch queued for validation and normalization (at start, with 32
    // batches in flight, the first commit came 1.5 s after the first fetch).
    let rating = Arbiter::new();
    let rater = {
        let (pool, catalog, metrics) = (pool.clone(), catalog.clone(), metrics.clone());
        let (catalog_check, sup) = (settings.catalog_check, supervision.clone());
        Supervisor::start_in_arbiter(&rating.handle(), move |_| {
            rater::Rater::new(pool, catalog, committers, metrics, catalog_check, sup)
        })
    };
    supervision.watch("rater", &rater);
    let normalizer = {
        let (metrics, sup) = (metrics.clone(), supervision.clone());
        Supervisor::start_in_arbiter(&mediation.handle(), move |_| {
            stages::Normalizer::new(plan, rater, metrics, sup)
        })
    };
    supervision.watch("normalizer", &normalizer);
    // The periodic actors get a thread of their own, so that stopping it when the
    // pipeline returns stops them too (their supervisors would restart them otherwise).
    let periodic = Arbiter::new();
    let resolver = {
        let (pool, every, metrics, accumulators, sup) = (
            pool.clone(),
            settings.suspense_interval,
            metrics.clone(),
            accumulators.clone(),
            supervision.clone(),
        );
        Supervisor::start_in_arbiter(&periodic.handle(), move |_| {
            suspense::SuspenseResolver::new(pool, every, metrics, accumulators, sup)
        })
    };
    supervision.watch("suspense", &resolver);
    let refresher = settings.report_refresh.map(|every| {
        let (pool, metrics, sup) = (pool.clone(), metrics.clone(), supervision.clone());
        let timezone = catalog.catalog.operator.timezone.name().to_string();
        Supervisor::start_in_arbiter(&periodic.handle(), move |_| {
            reporter::ReportRefresher::new(pool, every, timezone, metrics, sup)
        })
    });
    if let Some(r) = &refresher {
        supervision.watch("reporter", r);
    }
    let biller = settings.close_after_days.map(|days| {
        let (pool, metrics, sup) = (pool.clone(), metrics.clone(), supervision.clone());
        Supervisor::start_in_arbiter(&periodic.handle(), move |_| {
            biller::Biller::new(pool, days, metrics, refresher, sup)
        })
    });
    if let Some(b) = &biller {
        supervision.watch("biller", b);
    }
    let validator = {
        let (validation, metrics, sup) = (
            settings.validation.clone(),
            metrics.clone(),
            supervision.clone(),
        );
        Supervisor::start_in_arbiter(&mediation.handle(), move |_| {
            stages::Validator::new(validation, normalizer, metrics, sup)
        })
    };
    supervision.watch("validator", &validator);

    let (done_tx, done_rx) = oneshot::channel();
    let source = {
        let (source_settings, metrics, sup) = (s.clone(), metrics.clone(), supervision.clone());
        Supervisor::start(move |_| {
            source::KafkaSource::new(
                source_settings,
                validator,
                metrics,
                shutdown_rx,
                done_tx,
                sup,
            )
        })
    };
    supervision.watch("source", &source);

    let server = http::serve(
        settings.http,
        http::State::new(
            metrics.clone(),
            pool.clone(),
            producer,
            s.topic.clone(),
            s.brokers.clone(),
            supervision.clone(),
        ),
    )
    .with_context(|| format!("Failed to listen on {}", settings.http))?;
    let server_handle = server.handle();
    actix::spawn(server);
    info!(http = %settings.http, "HTTP endpoints up: /metrics /healthz /readyz.");

    // Until the source is done: idle, or drained after a signal, within the grace. A crash
    // loop or a dead actor ends the daemon with an error instead.
    let mut watchdog = tokio::time::interval(Duration::from_secs(1));
    let mut done_rx = done_rx;
    let mut deadline: Option<Instant> = None;
    let ended: anyhow::Result<SourceExit> = loop {
        tokio::select! {
            exit = &mut done_rx => {
                break exit.map_err(|_| anyhow::anyhow!("the source ended without finishing"));
            }
            _ = stop_requested.changed(), if deadline.is_none() => {
                deadline = Some(Instant::now() + SHUTDOWN_GRACE);
            }
            _ = sleep_until_some(deadline) => {
                warn!(
                    grace_secs = SHUTDOWN_GRACE.as_secs(),
                    "The source did not finish within the shutdown grace; stopping without it. What it had in flight is read again from the stored offsets."
                );
                break Ok(SourceExit::Shutdown);
            }
            _ = fatal.changed() => {
                let reason = fatal.borrow().clone().unwrap_or_default();
                error!(%reason, "Stopping the daemon: its actors cannot recover in this process.");
                break Err(anyhow::anyhow!("{reason}"));
            }
            _ = watchdog.tick() => supervision.check_watched(),
        }
    };
    // Every batch is committed; let the last hand-overs and the alerts they raise finish,
    // within the grace (or as long again after an idle end).
    let finish_by = deadline.unwrap_or_else(|| Instant::now() + SHUTDOWN_GRACE);
    if ended.is_ok() {
        let drained = tokio::time::timeout_at(finish_by, async {
            for c in &committer_addrs {
                let _ = c.send(committer::Drain).await;
            }
            for a in &accumulators {
                let _ = a.send(accumulator::Drain).await;
            }
        })
        .await;
        if drained.is_err() {
            warn!("The last hand-overs to the accumulators did not finish in time; their alerts are checked at the next start.");
        }
    }
    if let Some(p) = &publisher {
        let left = finish_by.saturating_duration_since(Instant::now());
        p.flush(left.max(Duration::from_millis(100)));
    }
    let left = finish_by.saturating_duration_since(Instant::now());
    let _ = tokio::time::timeout(
        left.max(Duration::from_millis(200)),
        server_handle.stop(true),
    )
    .await;
    signals.abort();
    periodic.stop();
    mediation.stop();
    rating.stop();
    billing_thread.stop();
    for thread in storage_threads {
        thread.stop();
    }
    let exit = ended?;
    info!(?exit, "cdrflow stopped.");
    Ok(exit)
}

/// Sleeps until `deadline`, or for ever without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            warn!("Failed to install signal handlers; only Ctrl-C will stop the daemon.");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
