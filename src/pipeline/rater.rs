//! The Rater: prices each normalized record of a batch, between the Normalizer and the
//! Committers. The rating itself is pure domain code (`domain::rating`); this actor
//! fetches what it needs from Postgres per batch — the batch's subscribers (one indexed
//! query) and, every few seconds, whether a newer catalog version was applied — and
//! routes the batch to the committer that owns its partition.
//!
//! Batches must reach a committer in the order they arrived: the lookup runs with
//! `ctx.wait`, so the Rater takes no other message until this batch is rated and queued
//! at its committer; only the wait for the commit runs concurrently.

use super::committer::Committer;
use super::messages::{Batch, PipelineError};
use super::stages::MAILBOX_CAPACITY;
use crate::domain::batch::Subscriber;
use crate::storage::{self, catalog::Version, StorageError};
use crate::telemetry::events::{ActorRestarted, CatalogLoaded};
use crate::telemetry::Metrics;
use actix::prelude::*;
use deadpool_postgres::Pool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How often the Rater asks whether a newer catalog was applied. A new version is in
/// force for batches rated after it is seen; nothing already stored changes (that is
/// what `replay --rerate` is for).
const CATALOG_CHECK: Duration = Duration::from_secs(5);

pub struct Rater {
    pool: Pool,
    catalog: Arc<Version>,
    checked: Instant,
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
        Rater {
            pool,
            catalog,
            checked: Instant::now(),
            next,
            metrics,
        }
    }
}

impl Actor for Rater {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Supervised for Rater {
    fn restarting(&mut self, _: &mut Self::Context) {
        ActorRestarted { actor: "rater" }.emit(&self.metrics);
    }
}

/// What the Rater needs from Postgres for one batch.
struct Lookup {
    subscribers: HashMap<String, Subscriber>,
    newer: Option<Version>,
}

async fn lookup(
    pool: &Pool,
    msisdns: Vec<String>,
    current: i32,
    check_catalog: bool,
) -> Result<Lookup, StorageError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT msisdn, customer_id, plan FROM customers WHERE msisdn = ANY($1::text[])",
        )
        .await?;
    let subscribers = client
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
        .collect();
    let mut newer = None;
    if check_catalog {
        if let Some(v) = storage::catalog::active_version(&**client).await? {
            if v != current {
                newer = storage::catalog::load(&**client, Some(v))
                    .await
                    .map_err(|e| StorageError::Config(e.to_string()))?;
            }
        }
    }
    Ok(Lookup { subscribers, newer })
}

impl Handler<Batch> for Rater {
    type Result = ResponseFuture<<Batch as Message>::Result>;

    fn handle(&mut self, batch: Batch, ctx: &mut Self::Context) -> Self::Result {
        let (queued_tx, queued_rx) = oneshot::channel();
        let msisdns: Vec<String> = batch
            .data
            .subscribers()
            .into_iter()
            .map(str::to_string)
            .collect();
        let check = self.checked.elapsed() >= CATALOG_CHECK;
        let pool = self.pool.clone();
        let current = self.catalog.version;
        let work = async move { lookup(&pool, msisdns, current, check).await }
            .into_actor(self)
            .map(move |found, act, _| {
                let queued = found.map(|found| {
                    if check {
                        act.checked = Instant::now();
                    }
                    if let Some(v) = found.newer {
                        act.catalog = Arc::new(v);
                        CatalogLoaded {
                            version: act.catalog.version,
                            label: &act.catalog.label,
                        }
                        .emit(&act.metrics);
                    }
                    let mut batch = batch;
                    batch.data.rate(
                        &act.catalog.catalog,
                        act.catalog.version,
                        &found.subscribers,
                    );
                    let committer =
                        &act.next[batch.data.partition.rem_euclid(act.next.len() as i32) as usize];
                    committer.send(batch)
                });
                let _ = queued_tx.send(queued);
            });
        ctx.wait(work);
        Box::pin(async move {
            let queued = queued_rx
                .await
                .map_err(|_| PipelineError::StageDown("rater"))??;
            queued
                .await
                .map_err(|_| PipelineError::StageDown("committer"))?
        })
    }
}
