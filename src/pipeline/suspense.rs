//! The SuspenseResolver: every few seconds, releases suspense records whose subscriber
//! now exists (after `customers import` or `generate`), rated with the active catalog.
//! The work and its exactly-once guarantee live in `storage::suspense`; this actor only
//! schedules it and reports.

use super::accumulator::{shard_of, Accumulator, Refresh};
use super::faults;
use super::supervision::{catch_future, Supervision};
use crate::storage::{self, catalog::Version, suspense, StorageError};
use crate::telemetry::events::{DatabaseFailed, SuspenseResolved};
use crate::telemetry::Metrics;
use actix::prelude::*;
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::time::Duration;

pub struct SuspenseResolver {
    pool: Pool,
    every: Duration,
    metrics: Metrics,
    running: bool,
    /// Told about customers whose buckets grew, so their alerts are checked.
    accumulators: Vec<Addr<Accumulator>>,
    /// The catalog of the last pass, parsed again only when a newer version appears.
    catalog: Option<Arc<Version>>,
    supervision: Supervision,
}

impl SuspenseResolver {
    pub fn new(
        pool: Pool,
        every: Duration,
        metrics: Metrics,
        accumulators: Vec<Addr<Accumulator>>,
        supervision: Supervision,
    ) -> Self {
        SuspenseResolver {
            pool,
            every,
            metrics,
            accumulators,
            running: false,
            catalog: None,
            supervision,
        }
    }
}

impl Actor for SuspenseResolver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.supervision.recover("suspense", ctx);
        ctx.run_interval(self.every, |act, ctx| {
            // One pass at a time: a slow pass is not stacked on by the next tick.
            if act.running {
                return;
            }
            act.running = true;
            let (pool, metrics, catalog, accumulators) = (
                act.pool.clone(),
                act.metrics.clone(),
                act.catalog.clone(),
                act.accumulators.clone(),
            );
            ctx.spawn(
                catch_future(async move {
                    faults::hit("suspense");
                    match pass(&pool, &metrics, catalog, &accumulators).await {
                        Ok(used) => used,
                        Err(error) => {
                            DatabaseFailed {
                                actor: "suspense",
                                action: "resolve suspense records; will try again",
                                error: &error,
                            }
                            .emit(&metrics);
                            None
                        }
                    }
                })
                .into_actor(act)
                .map(|used, act, ctx| {
                    act.running = false;
                    match used {
                        Ok(Some(used)) => act.catalog = Some(used),
                        Ok(None) => {}
                        // The pass's transaction was rolled back; the next one does it.
                        Err(panic) => {
                            act.supervision
                                .panicked("suspense", "a resolution pass", &panic);
                            ctx.stop();
                        }
                    }
                }),
            );
        });
    }
}

impl Supervised for SuspenseResolver {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.running = false;
        self.catalog = None;
        self.supervision.restarting("suspense");
    }
}

/// One pass with the active catalog (`current` if it still is); returns the catalog used.
async fn pass(
    pool: &Pool,
    metrics: &Metrics,
    current: Option<Arc<Version>>,
    accumulators: &[Addr<Accumulator>],
) -> Result<Option<Arc<Version>>, StorageError> {
    let mut client = pool.get().await?;
    let active = storage::catalog::active_version(&**client).await?;
    let catalog = match (current, active) {
        (_, None) => return Ok(None),
        (Some(c), Some(v)) if c.version == v => c,
        (_, Some(v)) => match storage::catalog::load(&**client, Some(v)).await? {
            Some(loaded) => Arc::new(loaded),
            None => return Ok(None),
        },
    };
    let done = suspense::resolve(&mut client, &catalog).await?;
    SuspenseResolved {
        rated: done.rated,
        duplicates: done.duplicates,
        unratable: done.unratable,
    }
    .emit(metrics);
    let n = accumulators.len();
    for (i, addr) in accumulators.iter().enumerate() {
        let mine: Vec<i64> = done
            .customers
            .iter()
            .copied()
            .filter(|c| shard_of(*c, n) == i)
            .collect();
        if !mine.is_empty() {
            let _ = addr.send(Refresh(mine)).await;
        }
    }
    Ok(Some(catalog))
}
