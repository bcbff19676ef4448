//! The Rater: prices each normalized record of a batch, between the Normalizer and the
//! Committers. The rating itself is pure domain code (`domain::rating`); this actor
//! fetches the batch's subscribers from Postgres (one indexed query), routes the batch to
//! the committer that owns its partition, and every few seconds checks whether a newer
//! catalog version was applied.
//!
//! Lookups of consecutive batches overlap (a serialized lookup measured as a bubble that
//! cost a third of the throughput), but batches still reach the committers in the order
//! they arrived: each batch waits, after its lookup, until the batch before it has been
//! queued at its committer. Subscribers found are kept for a few seconds, so that most
//! batches need no lookup at all: a customer's change of plan is in force within that
//! time, like a new catalog version.

use super::committer::Committer;
use super::messages::{Batch, PipelineError};
use super::stages::MAILBOX_CAPACITY;
use crate::domain::batch::Subscriber;
use crate::storage::{self, catalog::Version, StorageError};
use crate::telemetry::events::{ActorRestarted, CatalogLoaded, DatabaseFailed};
use crate::telemetry::metrics::StageMetrics;
use crate::telemetry::Metrics;
use actix::prelude::*;
use deadpool_postgres::Pool;
use futures::future::{FutureExt, Shared};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How often the Rater asks whether a newer catalog was applied. A new version is in
/// force for batches rated after it is seen; nothing already stored changes (that is
/// what `replay --rerate` is for).
const CATALOG_CHECK: Duration = Duration::from_secs(5);

/// How long a subscriber found in Postgres is trusted without asking again.
const SUBSCRIBER_TTL: Duration = Duration::from_secs(5);
/// Subscribers kept at most; beyond it the cache starts over (memory stays bounded
/// whatever the number of customers).
const SUBSCRIBER_CACHE_MAX: usize = 500_000;

/// Subscribers found recently. Unknown MSISDNs are never kept: their records go to
/// suspense, which is resolved by its own pass once the customer exists.
#[derive(Default)]
struct SubscriberCache {
    found: HashMap<String, (Subscriber, Instant)>,
}

impl SubscriberCache {
    /// The MSISDNs of `msisdns` not known, or not fresh: to look up.
    fn missing(&self, msisdns: Vec<&str>) -> Vec<String> {
        let now = Instant::now();
        msisdns
            .into_iter()
            .filter(|m| {
                !matches!(self.found.get(*m), Some((_, at)) if now.duration_since(*at) < SUBSCRIBER_TTL)
            })
            .map(str::to_string)
            .collect()
    }

    fn keep(&mut self, found: HashMap<String, Subscriber>) {
        if self.found.len() + found.len() > SUBSCRIBER_CACHE_MAX {
            self.found.clear();
        }
        let now = Instant::now();
        for (m, sub) in found {
            // Entries found together would expire together and make one batch look
            // them all up again (a latency spike every TTL, measured): age each by up to
            // half the TTL at random, so that refreshes spread out.
            let aged =
                Duration::from_millis(rand::random_range(0..SUBSCRIBER_TTL.as_millis() as u64 / 2));
            self.found
                .insert(m, (sub, now.checked_sub(aged).unwrap_or(now)));
        }
    }

    fn get(&self, msisdn: &str) -> Option<&Subscriber> {
        self.found.get(msisdn).map(|(sub, _)| sub)
    }
}

/// Resolves once the previous batch is queued at its committer (or was dropped).
type Queued = Shared<oneshot::Receiver<()>>;

pub struct Rater {
    pool: Pool,
    catalog: Arc<Version>,
    /// The previous batch's place in line.
    previous: Queued,
    /// Shared with the batches' futures, which run on this actor's thread.
    cache: Rc<RefCell<SubscriberCache>>,
    /// Committers, each owning a fixed share of the partitions (partition mod n), so
    /// that one partition's batches always commit in order on one connection while
    /// different partitions commit side by side.
    next: Vec<Addr<Committer>>,
    stage: StageMetrics,
    next_stage: StageMetrics,
    metrics: Metrics,
}

impl Rater {
    pub fn new(
        pool: Pool,
        catalog: Arc<Version>,
        next: Vec<Addr<Committer>>,
        metrics: Metrics,
    ) -> Self {
        assert!(!next.is_empty(), "at least one committer");
        CatalogLoaded {
            version: catalog.version,
            label: &catalog.label,
        }
        .emit(&metrics);
        let (done, previous) = oneshot::channel();
        let _ = done.send(());
        Rater {
            pool,
            catalog,
            previous: previous.shared(),
            cache: Rc::default(),
            next,
            stage: metrics.stage("rater"),
            next_stage: metrics.stage("committer"),
            metrics,
        }
    }
}

impl Actor for Rater {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        ctx.run_interval(CATALOG_CHECK, |act, ctx| {
            let (pool, current) = (act.pool.clone(), act.catalog.version);
            ctx.spawn(
                async move { newer_catalog(&pool, current).await }
                    .into_actor(act)
                    .map(|found, act, _| match found {
                        Ok(Some(v)) => {
                            act.catalog = Arc::new(v);
                            CatalogLoaded {
                                version: act.catalog.version,
                                label: &act.catalog.label,
                            }
                            .emit(&act.metrics);
                        }
                        Ok(None) => {}
                        Err(error) => DatabaseFailed {
                            actor: "rater",
                            action:
                                "check for a newer catalog; rating goes on with the current one",
                            error: &error,
                        }
                        .emit(&act.metrics),
                    }),
            );
        });
    }
}

/// The active catalog if it is newer than `current`.
async fn newer_catalog(pool: &Pool, current: i32) -> Result<Option<Version>, StorageError> {
    let client = pool.get().await?;
    match storage::catalog::active_version(&**client).await? {
        Some(v) if v != current => storage::catalog::load(&**client, Some(v))
            .await
            .map_err(|e| StorageError::Config(e.to_string())),
        _ => Ok(None),
    }
}

impl Supervised for Rater {
    fn restarting(&mut self, _: &mut Self::Context) {
        ActorRestarted { actor: "rater" }.emit(&self.metrics);
    }
}

async fn subscribers(
    pool: &Pool,
    msisdns: Vec<String>,
) -> Result<HashMap<String, Subscriber>, StorageError> {
    storage::customers::subscribers(&pool.get().await?, &msisdns).await
}

impl Handler<Batch> for Rater {
    type Result = ResponseFuture<<Batch as Message>::Result>;

    fn handle(&mut self, mut batch: Batch, _: &mut Self::Context) -> Self::Result {
        self.stage.taken();
        let (stage, next_stage) = (self.stage.clone(), self.next_stage.clone());
        let missing = self.cache.borrow().missing(batch.data.subscribers());
        let (pool, catalog, cache) = (self.pool.clone(), self.catalog.clone(), self.cache.clone());
        let committer =
            self.next[batch.data.partition.rem_euclid(self.next.len() as i32) as usize].clone();
        let (queued, mine) = oneshot::channel();
        let previous = std::mem::replace(&mut self.previous, mine.shared());
        Box::pin(async move {
            let found = if missing.is_empty() {
                Ok(HashMap::new())
            } else {
                subscribers(&pool, missing).await
            };
            // In line: the batch before this one is at its committer first.
            let _ = previous.await;
            match found {
                Ok(found) => cache.borrow_mut().keep(found),
                Err(e) => {
                    let _ = queued.send(());
                    return Err(e.into());
                }
            };
            {
                let cache = cache.borrow();
                batch
                    .data
                    .rate(&catalog.catalog, catalog.version, |m| cache.get(m));
            }
            stage.handled(batch.data.records.len());
            next_stage.enqueued();
            let committed = committer.send(batch);
            let _ = queued.send(());
            committed
                .await
                .map_err(|_| PipelineError::StageDown("committer"))?
        })
    }
}
