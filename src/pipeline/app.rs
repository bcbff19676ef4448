//! The daemon as one value. `App::build` waits for Postgres and the broker, then starts
//! every actor of `cdrflow run` on threads of its own and the HTTP server;
//! `run_until_stopped` runs it until the stream is idle (with `exit_when_idle`), a stop
//! is asked for (`Stop`, which SIGTERM and SIGINT trigger in `run`), or its actors cannot
//! recover; when it returns, nothing it started is left running.

use super::accumulator::{self, Accumulator};
use super::committer::{self, Committer};
use super::supervision::Supervision;
use super::{biller, rater, reporter, source, stages, suspense, RunSettings, SourceExit};
use crate::domain::NumberPlan;
use crate::http;
use crate::kafka::client;
use crate::kafka::publisher::Publisher;
use crate::retry::retry;
use crate::storage;
use crate::telemetry::Metrics;
use actix::{Addr, Arbiter, Supervisor};
use anyhow::Context as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// How long start-up waits for Postgres and the broker before giving up.
const STARTUP_PATIENCE: Duration = Duration::from_secs(300);

/// From SIGTERM to the end of the process, at most: time for the batches in flight to
/// commit and for the last alerts and published records to go out, within the 10 s a
/// service manager commonly allows. What is not committed by then is read again from the
/// stored offsets by the next owner of its partition.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// How long the threads of a stopped daemon are waited for.
const THREADS_GONE_WITHIN: Duration = Duration::from_secs(2);

/// Asks a daemon to stop as SIGTERM does: the batches in flight commit, within the grace.
#[derive(Clone)]
pub struct Stop(Arc<watch::Sender<bool>>);

impl Stop {
    /// A stop and what the daemon listens to.
    pub fn new() -> (Stop, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (Stop(Arc::new(tx)), rx)
    }

    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

/// A started daemon.
pub struct App {
    supervision: Supervision,
    /// Why the daemon cannot go on, once its supervision says so. Subscribed before any
    /// actor starts, so that an escalation is never missed.
    fatal: watch::Receiver<Option<String>>,
    stop: watch::Receiver<bool>,
    publisher: Option<Publisher>,
    committers: Vec<Addr<Committer>>,
    accumulators: Vec<Addr<Accumulator>>,
    servers: Vec<actix_web::dev::ServerHandle>,
    /// Why the source finished.
    done: oneshot::Receiver<SourceExit>,
    /// Every thread the actors run on.
    threads: Vec<Arbiter>,
}

impl App {
    /// Start the daemon; `None` if a stop was asked for while waiting for Postgres or
    /// the broker.
    pub async fn build(
        settings: RunSettings,
        metrics: Metrics,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Option<App>> {
        let mut stopped = stop.clone();
        let Some(started) = unless_stopped(&mut stopped, start_up(&settings)).await else {
            return Ok(None);
        };
        let (plan, pool, catalog) = started?;
        let s = &settings.source;
        let producer = client::producer(&s.kafka).context("Failed to create the Kafka producer")?;
        let supervision = Supervision::new(metrics.clone());
        // Subscribed before any actor starts, so that an escalation is never missed.
        let fatal = supervision.fatal();
        let publisher = (settings.normalized_topic.is_some() || settings.rejected_topic.is_some())
            .then(|| Publisher {
                producer: producer.clone(),
                normalized_topic: settings.normalized_topic.clone(),
                rejected_topic: settings.rejected_topic.clone(),
            });

        // CPU-bound mediation, rating and the database round trips each get a thread of their own,
        // so decoding the next batch overlaps with committing the previous one.
        let mediation = Arbiter::new();
        let storage_threads: Vec<Arbiter> =
            (0..settings.committers).map(|_| Arbiter::new()).collect();
        let catalog = Arc::new(catalog);
        // The accumulators share one thread: their work per batch is small next to a commit.
        let billing_thread = Arbiter::new();
        let memory = settings.memory;
        info!(
            memory_mb = memory.megabytes,
            inflight_mb = memory.inflight_bytes >> 20,
            prefetch_mb = memory.prefetch_kbytes >> 10,
            subscribers = memory.subscribers,
            numbers = memory.numbers,
            bucket_keys = memory.bucket_keys,
            record_ids_per_committer = memory.record_ids_per_committer,
            settled_per_shard = memory.settled_per_shard,
            "Memory budget shared out."
        );
        let known = Arc::new(crate::storage::caches::KnownBuckets::new(
            memory.bucket_keys,
        ));
        let accumulators: Vec<_> = (0..settings.accumulators)
            .map(|shard| {
                let (pool, catalog, producer, metrics, known) = (
                    pool.clone(),
                    catalog.clone(),
                    producer.clone(),
                    metrics.clone(),
                    known.clone(),
                );
                let acc = accumulator::AccumulatorSettings {
                    shard: (shard, settings.accumulators),
                    ..settings.accumulator.clone()
                };
                let sup = supervision.clone();
                Supervisor::start_in_arbiter(&billing_thread.handle(), move |_| {
                    accumulator::Accumulator::new(pool, catalog, acc, producer, metrics, known, sup)
                })
            })
            .collect();
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
                        memory.record_ids_per_committer,
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
        // would wait behind every batch queued for validation and normalization.
        let rating = Arbiter::new();
        let rater = {
            let (pool, catalog, metrics) = (pool.clone(), catalog.clone(), metrics.clone());
            let (catalog_check, sup) = (settings.catalog_check, supervision.clone());
            Supervisor::start_in_arbiter(&rating.handle(), move |_| {
                rater::Rater::new(
                    pool,
                    catalog,
                    committers,
                    metrics,
                    catalog_check,
                    memory.subscribers,
                    sup,
                )
            })
        };
        supervision.watch("rater", &rater);
        let normalizer = {
            let (metrics, sup) = (metrics.clone(), supervision.clone());
            Supervisor::start_in_arbiter(&mediation.handle(), move |_| {
                stages::Normalizer::new(plan, memory.numbers, rater, metrics, sup)
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

        let (done_tx, done) = oneshot::channel();
        // The source polls the consumer on a thread of its own, which stops with the others.
        let source_thread = Arbiter::new();
        let source = {
            let (source_settings, metrics, sup, stop) = (
                s.clone(),
                metrics.clone(),
                supervision.clone(),
                stop.clone(),
            );
            Supervisor::start_in_arbiter(&source_thread.handle(), move |_| {
                source::KafkaSource::new(source_settings, validator, metrics, stop, done_tx, sup)
            })
        };
        supervision.watch("source", &source);

        let h = &settings.http;
        let api_pool = storage::api_pool(&s.database_url, h.pool_size, h.statement_timeout)?;
        let servers = http::serve(
            h,
            http::State::new(
                metrics.clone(),
                api_pool,
                pool.clone(),
                producer,
                s.topic.clone(),
                s.kafka.clone(),
                supervision.clone(),
            ),
        )?;
        let server_handles = servers.iter().map(|s| s.handle()).collect();
        for server in servers {
            actix::spawn(server);
        }
        match h.metrics_http {
            Some(probes) => info!(
                http = %h.http,
                metrics_http = %probes,
                "HTTP endpoints up: the API and dashboard; /metrics /healthz /readyz on their own listener."
            ),
            None => {
                info!(http = %h.http, "HTTP endpoints up: /metrics /healthz /readyz, the API and dashboard.")
            }
        }
        if h.open_to_the_network() {
            warn!(
                http = %h.http,
                "The API is served without a token on a non-loopback address (--insecure-no-auth): anyone who reaches it reads every customer's data."
            );
        }
        Ok(Some(App {
            supervision,
            fatal,
            stop,
            publisher,
            committers: committer_addrs,
            accumulators,
            servers: server_handles,
            done,
            threads: [mediation, rating, billing_thread, periodic, source_thread]
                .into_iter()
                .chain(storage_threads)
                .collect(),
        }))
    }

    /// Run until the source is done: idle, or drained after a stop, within the grace. A
    /// crash loop or a dead actor ends the daemon with an error instead.
    pub async fn run_until_stopped(self) -> anyhow::Result<SourceExit> {
        let App {
            supervision,
            mut fatal,
            mut stop,
            publisher,
            committers,
            accumulators,
            servers,
            mut done,
            threads,
        } = self;
        let mut watchdog = tokio::time::interval(Duration::from_secs(1));
        let mut deadline: Option<Instant> = None;
        let ended: anyhow::Result<SourceExit> = loop {
            tokio::select! {
                exit = &mut done => {
                    break exit.map_err(|_| anyhow::anyhow!("the source ended without finishing"));
                }
                _ = stop.wait_for(|stop| *stop), if deadline.is_none() => {
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
                for c in &committers {
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
            futures::future::join_all(servers.iter().map(|s| s.stop(true))),
        )
        .await;
        stop_threads(threads).await;
        let exit = ended?;
        info!(?exit, "cdrflow stopped.");
        Ok(exit)
    }
}

/// Run the daemon until SIGTERM or SIGINT, or, with `exit_when_idle`, until the stream
/// has gone quiet and everything is committed. Signals are listened for first: a daemon
/// still waiting for Postgres or the broker at start-up stops at once too.
pub async fn run(settings: RunSettings, metrics: Metrics) -> anyhow::Result<SourceExit> {
    let (stop, stopping) = Stop::new();
    let signals = actix::spawn(async move {
        wait_for_signal().await;
        info!("Signal received; shutting down gracefully.");
        stop.stop();
    });
    let ended = match App::build(settings, metrics, stopping).await {
        Ok(Some(app)) => app.run_until_stopped().await,
        Ok(None) => {
            info!("Stopped while starting.");
            Ok(SourceExit::Shutdown)
        }
        Err(e) => Err(e),
    };
    signals.abort();
    ended
}

/// Stop every thread and wait, a bounded time, until each has finished.
async fn stop_threads(threads: Vec<Arbiter>) {
    for thread in &threads {
        thread.stop();
    }
    let joined = tokio::task::spawn_blocking(move || {
        for thread in threads {
            let _ = thread.join();
        }
    });
    if tokio::time::timeout(THREADS_GONE_WITHIN, joined)
        .await
        .is_err()
    {
        warn!("A thread of the daemon did not finish in time after it was stopped.");
    }
}

/// Start-up: the schema, the topics, the pool and the catalog, each waited for with
/// back-off.
async fn start_up(
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
    topics.extend(settings.normalized_topic.as_deref());
    topics.extend(settings.rejected_topic.as_deref());
    if let Some(alerts) = &settings.accumulator.alerts_topic {
        topics.push(alerts.as_str());
    }
    retry("the Kafka broker", STARTUP_PATIENCE, || {
        client::ensure_topics(&s.kafka, &topics, settings.topic_partitions)
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
