//! The SuspenseResolver: every few seconds, releases suspense records whose subscriber
//! now exists (after `customers import` or `generate`), rated with the active catalog.
//! The work and its exactly-once guarantee live in `storage::suspense`; this actor only
//! schedules it and reports.

use crate::storage::{self, suspense};
use crate::telemetry::events::SuspenseResolved;
use crate::telemetry::Metrics;
use actix::prelude::*;
use deadpool_postgres::Pool;
use std::time::Duration;
use tracing::warn;

pub struct SuspenseResolver {
    pool: Pool,
    every: Duration,
    metrics: Metrics,
    running: bool,
}

impl SuspenseResolver {
    pub fn new(pool: Pool, every: Duration, metrics: Metrics) -> Self {
        SuspenseResolver {
            pool,
            every,
            metrics,
            running: false,
        }
    }
}

impl Actor for SuspenseResolver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.every, |act, ctx| {
            // One pass at a time: a slow pass is not stacked on by the next tick.
            if act.running {
                return;
            }
            act.running = true;
            let (pool, metrics) = (act.pool.clone(), act.metrics.clone());
            ctx.spawn(
                async move {
                    if let Err(error) = pass(&pool, &metrics).await {
                        warn!(%error, "Failed to resolve suspense records; will try again.");
                    }
                }
                .into_actor(act)
                .map(|_, act, _| act.running = false),
            );
        });
    }
}

impl Supervised for SuspenseResolver {}

async fn pass(pool: &Pool, metrics: &Metrics) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    let Some(catalog) = storage::catalog::load(&**client, None).await? else {
        return Ok(());
    };
    let done = suspense::resolve(&mut client, &catalog).await?;
    SuspenseResolved {
        rated: done.rated,
        duplicates: done.duplicates,
        unratable: done.unratable,
    }
    .emit(metrics);
    Ok(())
}
