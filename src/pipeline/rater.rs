//! The Rater: prices each normalized record of a batch, between the Normalizer and the
//! Committers. The rating itself is pure domain code (`domain::rating`); this actor
//! fetches the batch's subscribers from Postgres (one indexed query), routes the batch to
//! the committer that owns its partition, and every few seconds checks whether a newer
//! catalog version was applied.
//!
//! Lookups of consecutive batches overlap (a serialized lookup measured as a bubble that
//! cost a third of the throughput), but batches still reach the committers in the order
//! they arrived: each batch waits, after its lookup, until the batch before it has been
//! queued at its committer.

use super::committer::Committer;
use super::messages::{Batch, PipelineError};
use super::stages::MAILBOX_CAPACITY;
use crate::domain::batch::Subscriber;
use crate::storage::{self, catalog::Version, StorageError};
use crate::telemetry::events::{ActorRestarted, CatalogLoaded};
use crate::telemetry::Metrics;
use actix::prelude::*;
use deadpool_postgres::Pool;
use futures::future::{FutureExt, Shared};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::warn;

/// How often the Rater asks whether a newer catalog was applied. A new version is in
/// force for batches rated after it is seen; nothing already stored changes (that is
/// what `replay --rerate` is for).
const CATALOG_CHECK: Duration = Duration::from_secs(5);

/// Resolves once the previous batch is queued at its committer (or was dropped).
type Queued = Shared<oneshot::Receiver<()>>;

pub struct Rater {
    pool: Pool,
    catalog: Arc<Version>,
    /// The previous batch's place in line.
    previous: Queued,
    /// Committers, each owning a fixed share of the partitions (partition mod n), so
    /// that one partition's batches always commit in order on one connection while
    /// different partitions commit side by side.
    next: Vec<Addr<Committer>>,
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
            next,
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
                        Err(error) => {
                            warn!(%error, "Failed to check for a newer catalog; rating goes on with the current one.")
                        }
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
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT msisdn, customer_id, plan FROM customers WHERE msisdn = ANY($1::text[])",
        )
        .await?;
    Ok(client
        .query(&stmt, &[&msisdns])
        .await?
        .into_iter()
        .map(|r| {
            (
                r.get(0),
                Subscriber {
                    customer_id: r.get(1),
                    plan: r.get(2),
                },
            )
        })
        .collect())
}

impl Handler<Batch> for Rater {
    type Result = ResponseFuture<<Batch as Message>::Result>;

    fn handle(&mut self, mut batch: Batch, _: &mut Self::Context) -> Self::Result {
        let msisdns: Vec<String> = batch
            .data
            .subscribers()
            .into_iter()
            .map(str::to_string)
            .collect();
        let (pool, catalog) = (self.pool.clone(), self.catalog.clone());
        let committer =
            self.next[batch.data.partition.rem_euclid(self.next.len() as i32) as usize].clone();
        let (queued, mine) = oneshot::channel();
        let previous = std::mem::replace(&mut self.previous, mine.shared());
        Box::pin(async move {
            let found = subscribers(&pool, msisdns).await;
            // In line: the batch before this one is at its committer first.
            let _ = previous.await;
            let found = match found {
                Ok(found) => found,
                Err(e) => {
                    let _ = queued.send(());
                    return Err(e.into());
                }
            };
            batch.data.rate(&catalog.catalog, catalog.version, &found);
            let committed = committer.send(batch);
            let _ = queued.send(());
            committed
                .await
                .map_err(|_| PipelineError::StageDown("committer"))?
        })
    }
}
