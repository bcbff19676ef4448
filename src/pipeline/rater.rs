//! The Rater: prices each normalized record of a batch, between the Normalizer and the
//! Committers, on a thread of its own. The rating itself is pure domain code
//! (`domain::rating`); this actor finds the batch's subscribers (in its cache, else one
//! query for those it misses), routes the batch to the committer that owns its
//! partition, and every few seconds checks whether a newer catalog version was applied
//! (at once when a committer refuses a batch priced with a catalog older than a rerate
//! replay asked for).
//!
//! Lookups of consecutive batches overlap (serialized, each lookup would leave the
//! committers idle while it runs), but batches still reach the committers in the order
//! they arrived: each batch waits, after its lookup, until the batch before it has been
//! queued at its committer. Subscribers found are kept until customers change: every
//! second the Rater reads a counter that each statement changing customers bumps when it
//! commits (migration V6), and starts over when it moved. A customer's change of plan is
//! therefore in force about a second after it commits, for batches rated from then on.
//! When the counter is first read, every customer is read too if there are fewer than the
//! cache holds, and batches wait for that instead of each looking up thousands of cold
//! subscribers.

use super::committer::Committer;
use super::faults;
use super::messages::{Batch, PipelineError};
use super::stages::MAILBOX_CAPACITY;
use super::supervision::{catch_future, Restart, Supervision};
use crate::domain::batch::Subscriber;
use crate::storage::caches::Subscribers;
use crate::storage::catalog::Version;
use crate::storage::{self, StorageError};
use crate::telemetry::events::{CatalogLoaded, DatabaseFailed};
use crate::telemetry::metrics::{Cache, CacheGauge, StageMetrics};
use crate::telemetry::Metrics;
use actix::prelude::*;
use deadpool_postgres::Pool;
use futures::future::{FutureExt, Shared};
use std::cell::RefCell;
// foldhash: these maps are looked up per record, and SipHash (std's default) showed
// in the daemon's profile.
use foldhash::{HashMap, HashMapExt};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How often the Rater asks whether customers changed.
const CUSTOMER_CHECK: Duration = Duration::from_secs(1);
/// Resolves once the previous batch is queued at its committer (or was dropped).
type Queued = Shared<oneshot::Receiver<()>>;

pub struct Rater {
    pool: Pool,
    catalog: Arc<Version>,
    /// The previous batch's place in line.
    previous: Queued,
    /// Resolves once the customers were read in full at start (or that was not possible);
    /// batches wait for it before looking up what they miss.
    preloaded: Queued,
    preload_done: Option<oneshot::Sender<()>>,
    /// Shared with the batches' futures, which run on this actor's thread.
    cache: Rc<RefCell<Subscribers>>,
    cached: CacheGauge,
    /// A newer catalog is being looked for: one look at a time.
    loading_catalog: bool,
    /// How often to ask whether a newer catalog was applied (`--catalog-check-secs`). A
    /// new version is in force for batches rated after it is seen; nothing already
    /// stored changes (that is what `replay --rerate` is for, and it does not wait for
    /// this check: see [`CatalogNeeded`]).
    catalog_check: Duration,
    /// Committers, each owning a fixed share of the partitions (partition mod n), so
    /// that one partition's batches always commit in order on one connection while
    /// different partitions commit side by side.
    next: Vec<Addr<Committer>>,
    stage: StageMetrics,
    next_stage: StageMetrics,
    metrics: Metrics,
    supervision: Supervision,
}

impl Rater {
    pub fn new(
        pool: Pool,
        catalog: Arc<Version>,
        next: Vec<Addr<Committer>>,
        metrics: Metrics,
        catalog_check: Duration,
        subscribers: usize,
        supervision: Supervision,
    ) -> Self {
        assert!(!next.is_empty(), "at least one committer");
        CatalogLoaded {
            version: catalog.version,
            label: &catalog.label,
        }
        .emit(&metrics);
        let (done, previous) = oneshot::channel();
        let _ = done.send(());
        let (preload_done, preloaded) = oneshot::channel();
        Rater {
            pool,
            catalog,
            previous: previous.shared(),
            preloaded: preloaded.shared(),
            preload_done: Some(preload_done),
            cache: Rc::new(RefCell::new(Subscribers::new(subscribers))),
            cached: metrics.cache(Cache::Subscribers),
            loading_catalog: false,
            catalog_check,
            next,
            stage: metrics.stage("rater"),
            next_stage: metrics.stage("committer"),
            metrics,
            supervision,
        }
    }
}

impl Actor for Rater {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.supervision.recover("rater", ctx);
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        check_customers(self, ctx);
        ctx.run_interval(CUSTOMER_CHECK, check_customers);
        ctx.run_interval(self.catalog_check, check_catalog);
    }
}

/// Load the active catalog if it is newer than the one rating with.
fn check_catalog(act: &mut Rater, ctx: &mut Context<Rater>) {
    if act.loading_catalog {
        return;
    }
    act.loading_catalog = true;
    let (pool, current) = (act.pool.clone(), act.catalog.version);
    ctx.spawn(
        async move { newer_catalog(&pool, current).await }
            .into_actor(act)
            .map(|found, act, _| {
                act.loading_catalog = false;
                match found {
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
                        action: "check for a newer catalog; rating goes on with the current one",
                        error: &error,
                    }
                    .emit(&act.metrics),
                }
            }),
    );
}

/// A committer refused a batch priced with a catalog older than this version, which a
/// rerate replay asked for: load it now rather than at the next check, so that the
/// batch, read again after the source's back-off, is priced with it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CatalogNeeded(pub i32);

impl Handler<CatalogNeeded> for Rater {
    type Result = ();

    fn handle(&mut self, CatalogNeeded(version): CatalogNeeded, ctx: &mut Self::Context) {
        if self.catalog.version < version {
            check_catalog(self, ctx);
        }
    }
}

/// The active catalog if it is newer than `current`.
async fn newer_catalog(pool: &Pool, current: i32) -> Result<Option<Version>, StorageError> {
    let client = pool.get().await?;
    match storage::catalog::active_version(&**client).await? {
        Some(v) if v != current => storage::catalog::load(&**client, Some(v)).await,
        _ => Ok(None),
    }
}

impl Supervised for Rater {
    fn restarting(&mut self, _: &mut Self::Context) {
        // A look for a newer catalog in flight was dropped with the old context; the
        // subscribers are read again.
        self.loading_catalog = false;
        let capacity = self.cache.borrow().capacity();
        *self.cache.borrow_mut() = Subscribers::new(capacity);
        self.supervision.restarting("rater");
    }
}

impl Handler<Restart> for Rater {
    type Result = ();

    fn handle(&mut self, _: Restart, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Read every customer into the cache, when there are fewer than the cache holds: the
/// first batches then need no lookups (at start, 32 batches of cold lookups held the
/// pipeline for over a second). Done when the change counter is first read, and again
/// after a failed read; between, a change empties the cache and it fills batch by batch.
fn preload(act: &mut Rater, ctx: &mut Context<Rater>) {
    let pool = act.pool.clone();
    let (generation, capacity) = {
        let cache = act.cache.borrow();
        (cache.generation(), cache.capacity())
    };
    ctx.spawn(
        async move {
            let client = pool.get().await?;
            storage::customers::all_subscribers(&**client, capacity as i64).await
        }
        .into_actor(act)
        .map(move |read, act, _| {
            match read {
                Ok(Some(found)) => act.cache.borrow_mut().keep(found, generation),
                Ok(None) => {}
                Err(error) => DatabaseFailed {
                    actor: "rater",
                    action: "read the customers at start; they are looked up batch by batch",
                    error: &error,
                }
                .emit(&act.metrics),
            }
            if let Some(done) = act.preload_done.take() {
                let _ = done.send(());
            }
        }),
    );
}

/// Read the customer change counter; the cache starts over if it moved.
fn check_customers(act: &mut Rater, ctx: &mut Context<Rater>) {
    let pool = act.pool.clone();
    ctx.spawn(
        async move { customer_changes(&pool).await }
            .into_actor(act)
            .map(|read, act, ctx| match read {
                Ok(changes) => {
                    let unknown = act.cache.borrow_mut().changes_read(Some(changes));
                    act.cached.set(act.cache.borrow().len());
                    if unknown {
                        preload(act, ctx);
                    }
                }
                Err(error) => {
                    act.cache.borrow_mut().changes_read(None);
                    // Batches look up what they need meanwhile.
                    if let Some(done) = act.preload_done.take() {
                        let _ = done.send(());
                    }
                    DatabaseFailed {
                        actor: "rater",
                        action: "check whether customers changed; subscribers are looked up for every batch meanwhile",
                        error: &error,
                    }
                    .emit(&act.metrics)
                }
            }),
    );
}

async fn customer_changes(pool: &Pool) -> Result<i64, StorageError> {
    storage::customers::changes(&**pool.get().await?).await
}

async fn subscribers(
    pool: &Pool,
    msisdns: &[String],
) -> Result<HashMap<String, Subscriber>, StorageError> {
    storage::customers::subscribers(&pool.get().await?, msisdns).await
}

impl Handler<Batch> for Rater {
    type Result = ResponseFuture<<Batch as Message>::Result>;

    fn handle(&mut self, mut batch: Batch, ctx: &mut Self::Context) -> Self::Result {
        self.stage.taken();
        let (stage, next_stage) = (self.stage.clone(), self.next_stage.clone());
        let (pool, catalog, cache) = (self.pool.clone(), self.catalog.clone(), self.cache.clone());
        let preloaded = self.preloaded.clone();
        let committer =
            self.next[batch.data.partition.rem_euclid(self.next.len() as i32) as usize].clone();
        let rater = ctx.address();
        let supervision = self.supervision.clone();
        let work = batch.describe();
        let (queued, mine) = oneshot::channel();
        let previous = std::mem::replace(&mut self.previous, mine.shared());
        let rated = async move {
            let _ = preloaded.await;
            let (missing, generation) = {
                let cache = cache.borrow();
                (cache.missing(batch.data.subscribers()), cache.generation())
            };
            let found = if missing.is_empty() {
                Ok(HashMap::new())
            } else {
                subscribers(&pool, &missing).await
            };
            // In line: the batch before this one is at its committer first.
            let _ = previous.await;
            // The batches before this one may have made the cache start over since
            // `missing` was taken: what it no longer holds is looked up again, or a known
            // subscriber's records would go to suspense.
            let found = async {
                let (mut found, mut asked) = (found?, missing);
                loop {
                    let lost = cache
                        .borrow()
                        .lost(batch.data.subscribers(), &found, &asked);
                    if lost.is_empty() {
                        return Ok::<_, StorageError>(found);
                    }
                    found.extend(subscribers(&pool, &lost).await?);
                    asked.extend(lost);
                    asked.sort_unstable();
                }
            }
            .await;
            let found = match found {
                Ok(found) => found,
                Err(e) => {
                    let _ = queued.send(());
                    return Err(e.into());
                }
            };
            {
                faults::hit("rater");
                let cache = cache.borrow();
                batch.data.rate(&catalog.catalog, catalog.version, |m| {
                    found.get(m).or_else(|| cache.get(m))
                });
            }
            cache.borrow_mut().keep(found, generation);
            stage.handled(batch.data.records.len());
            next_stage.enqueued();
            let committed = committer.send(batch);
            let _ = queued.send(());
            Ok(committed)
        };
        Box::pin(async move {
            // The rating is guarded; the committer's answer is the committer's.
            let committed = match catch_future(rated).await {
                Ok(Ok(committed)) => committed,
                Ok(Err(error)) => return Err(error),
                Err(panic) => {
                    supervision.panicked("rater", &work, &panic);
                    rater.do_send(Restart);
                    return Err(PipelineError::Panicked {
                        actor: "rater",
                        message: panic.0,
                    });
                }
            };
            let answer = committed
                .await
                .map_err(|_| PipelineError::StageDown("committer"))?;
            if let Err(PipelineError::CatalogBehind { needed, .. }) = &answer {
                rater.do_send(CatalogNeeded(*needed));
            }
            answer
        })
    }
}
