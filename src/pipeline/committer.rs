//! The Committer: one Postgres transaction per batch holding its usage rows, rejects,
//! suspense rows, counters and the partition's offset; results published to the output
//! topics before the commit. Batches are committed one at a time, in mailbox order, so
//! a partition's offsets only ever move forward in sequence.

use super::messages::{Batch, BatchAck, PipelineError};
use super::stages::MAILBOX_CAPACITY;
use crate::kafka::publisher::Publisher;
use crate::storage::batch::{self, Written};
use crate::telemetry::events::{ActorRestarted, BatchCommitted, BatchFenced};
use crate::telemetry::Metrics;
use actix::prelude::*;
use chrono::Utc;
use deadpool_postgres::Pool;
use std::time::Instant;

pub struct Committer {
    pool: Pool,
    group: String,
    publisher: Option<Publisher>,
    metrics: Metrics,
}

impl Committer {
    pub fn new(pool: Pool, group: String, publisher: Option<Publisher>, metrics: Metrics) -> Self {
        Committer {
            pool,
            group,
            publisher,
            metrics,
        }
    }
}

impl Actor for Committer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Supervised for Committer {
    fn restarting(&mut self, _: &mut Self::Context) {
        ActorRestarted { actor: "committer" }.emit(&self.metrics);
    }
}

impl Handler<Batch> for Committer {
    // Atomic: the next batch waits until this one's transaction is over.
    type Result = AtomicResponse<Self, <Batch as Message>::Result>;

    fn handle(&mut self, batch: Batch, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let group = self.group.clone();
        let publisher = self.publisher.clone();
        let metrics = self.metrics.clone();
        AtomicResponse::new(Box::pin(
            async move { commit(&pool, &group, publisher.as_ref(), &metrics, batch).await }
                .into_actor(self),
        ))
    }
}

async fn commit(
    pool: &Pool,
    group: &str,
    publisher: Option<&Publisher>,
    metrics: &Metrics,
    batch: Batch,
) -> Result<BatchAck, PipelineError> {
    let started = Instant::now();
    let data = &batch.data;
    let mut client = pool
        .get()
        .await
        .map_err(crate::storage::StorageError::from)?;
    let tx = client
        .transaction()
        .await
        .map_err(crate::storage::StorageError::from)?;
    match batch::write(&tx, group, data, |inserted| {
        publisher.map(|p| p.start(data, inserted))
    })
    .await?
    {
        Written::Fenced { stored } => {
            tx.rollback()
                .await
                .map_err(crate::storage::StorageError::from)?;
            BatchFenced {
                partition: data.partition,
                from_offset: data.from_offset,
                stored,
            }
            .emit(metrics);
            Ok(BatchAck::Fenced { stored })
        }
        Written::Staged {
            summary,
            inserted,
            early: delivery,
        } => {
            if let Some(delivery) = delivery {
                delivery.wait().await?;
            }
            tx.commit()
                .await
                .map_err(crate::storage::StorageError::from)?;
            let now = Utc::now();
            let latencies: Vec<f64> = inserted
                .iter()
                .filter_map(|&i| data.records[i].source.timestamp)
                .map(|t| (now - t).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6)
                .collect();
            BatchCommitted {
                partition: data.partition,
                from_offset: data.from_offset,
                to_offset: data.to_offset,
                summary: &summary,
                commit_seconds: started.elapsed().as_secs_f64(),
                latencies: &latencies,
            }
            .emit(metrics);
            Ok(BatchAck::Committed(summary))
        }
    }
}
