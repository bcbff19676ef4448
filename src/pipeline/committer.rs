//! The Committer: one Postgres transaction per batch holding its usage rows, rejects,
//! suspense rows, counters and the partition's offset; results published to the output
//! topics before the commit. Batches are committed one at a time, in mailbox order, so
//! a partition's offsets only ever move forward in sequence.
//!
//! A batch that Postgres refuses for good (a constraint, a trigger: `ErrorKind::Refused`)
//! is split in halves, each written in a transaction that is rolled back, until the
//! records it refuses are found; those become `storage_refused` rejects (raw bytes kept)
//! and the rest of the batch commits. Transient errors leave the batch to the source,
//! which reads it again after its back-off.
//!
//! After a commit, the usage it added to the buckets goes to the billing accumulators
//! (by customer shard). Hand-overs run behind the commits, chained so a shard sees each
//! committer's batches in commit order; a committer goes on committing while up to
//! [`HANDOVERS_AHEAD`] of its hand-overs are outstanding, and waits beyond that, so
//! memory stays bounded and a slow accumulator slows the pipeline instead of growing a
//! queue.

use super::accumulator::{shard_of, Accumulator, Refresh, UsagePosted};
use super::faults;
use super::messages::{Batch, BatchAck, PipelineError};
use super::stages::MAILBOX_CAPACITY;
use super::supervision::{catch_future, Supervision};
use crate::domain::batch::{PartitionBatch, Verdict};
use crate::domain::reject::{RejectReason, Rejection};
use crate::kafka::publisher::Publisher;
use crate::storage::batch::{self, Written};
use crate::storage::billing::{CustomerUsage, Posted};
use crate::storage::caches::{KnownBuckets, RecentlyStored};
use crate::storage::{ErrorKind, StorageError};
use crate::telemetry::events::{
    BatchCommitted, BatchFenced, RecordsRefused, UsageLate, UsageRated,
};
use crate::telemetry::metrics::{Cache, CacheGauge, StageMetrics};
use crate::telemetry::Metrics;
use actix::prelude::*;
use chrono::Utc;
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

/// Hand-overs to the accumulators one committer may have outstanding.
pub const HANDOVERS_AHEAD: usize = 4;

pub struct Committer {
    pool: Pool,
    group: String,
    publisher: Option<Publisher>,
    metrics: Metrics,
    stage: StageMetrics,
    accumulator_stage: StageMetrics,
    accumulators: Vec<Addr<Accumulator>>,
    /// The last hand-over to the accumulators; each one waits for the one before.
    handing_over: Option<tokio::task::JoinHandle<()>>,
    /// One permit per outstanding hand-over.
    handovers: Arc<Semaphore>,
    /// What this committer committed lately; taken by the batch being committed and put
    /// back after it (batches are committed one at a time).
    recent: Option<RecentlyStored>,
    /// How many record ids `recent` holds (`pipeline::memory`).
    record_ids: usize,
    cached: CacheGauge,
    /// Shared by all committers.
    known: Arc<KnownBuckets>,
    /// The epoch of each partition's last batch. A new epoch means the partition was
    /// assigned, sought or fenced: what `recent` believes about it is dropped, since the
    /// records read again may be ones Postgres no longer has (a restore, a promoted
    /// replica behind its primary).
    epochs: std::collections::HashMap<i32, u64>,
    supervision: Supervision,
}

impl Committer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pool: Pool,
        group: String,
        publisher: Option<Publisher>,
        metrics: Metrics,
        accumulators: Vec<Addr<Accumulator>>,
        known: Arc<KnownBuckets>,
        record_ids: usize,
        supervision: Supervision,
    ) -> Self {
        Committer {
            cached: metrics.cache(Cache::RecordIds),
            pool,
            group,
            publisher,
            stage: metrics.stage("committer"),
            accumulator_stage: metrics.stage("accumulator"),
            metrics,
            accumulators,
            handing_over: None,
            handovers: Arc::new(Semaphore::new(HANDOVERS_AHEAD)),
            recent: Some(RecentlyStored::new(record_ids)),
            record_ids,
            known,
            epochs: std::collections::HashMap::new(),
            supervision,
        }
    }
}

/// Wait for the last hand-over to the accumulators (at shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

impl Handler<Drain> for Committer {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        let pending = self.handing_over.take();
        AtomicResponse::new(Box::pin(
            async move {
                if let Some(p) = pending {
                    let _ = p.await;
                }
            }
            .into_actor(self),
        ))
    }
}

/// Send `posted` to the accumulators' shards and wait until they took it.
async fn hand_over(accumulators: Vec<Addr<Accumulator>>, posted: Posted, queue: StageMetrics) {
    let n = accumulators.len();
    if n == 0 {
        return;
    }
    let mut by_shard: Vec<Vec<CustomerUsage>> = vec![Vec::new(); n];
    for d in posted.deltas {
        by_shard[shard_of(d.customer_id, n)].push(d);
    }
    let mut refresh: Vec<Vec<i64>> = vec![Vec::new(); n];
    for c in posted.invalidated {
        refresh[shard_of(c, n)].push(c);
    }
    let sends = accumulators
        .iter()
        .zip(by_shard.into_iter().zip(refresh))
        .map(|(addr, (deltas, refresh))| {
            let queue = queue.clone();
            async move {
                // A hand-over lost to a stopped accumulator is made by the sweep: the
                // transaction marked its checks.
                if !deltas.is_empty() {
                    queue.enqueued();
                    let _ = addr.send(UsagePosted(deltas)).await;
                }
                if !refresh.is_empty() {
                    let _ = addr.send(Refresh(refresh)).await;
                }
            }
        });
    futures::future::join_all(sends).await;
}

impl Actor for Committer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.supervision.recover("committer", ctx);
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Supervised for Committer {
    fn restarting(&mut self, _: &mut Self::Context) {
        // Nothing it remembers is trusted after a failure.
        self.recent = Some(RecentlyStored::new(self.record_ids));
        self.epochs.clear();
        self.supervision.restarting("committer");
    }
}

impl Handler<Batch> for Committer {
    // Atomic: the next batch waits until this one's transaction is over.
    type Result = AtomicResponse<Self, <Batch as Message>::Result>;

    fn handle(&mut self, batch: Batch, _: &mut Self::Context) -> Self::Result {
        self.stage.taken();
        let partition = batch.data.partition;
        if self
            .epochs
            .insert(partition, batch.epoch)
            .is_some_and(|e| e != batch.epoch)
        {
            // Dropped whole: a new epoch is rare (rebalance, fence, failure), and the
            // entries do not say their partition.
            self.recent = Some(RecentlyStored::new(self.record_ids));
        }
        let work = batch.describe();
        let (stage, queue) = (self.stage.clone(), self.accumulator_stage.clone());
        let records = batch.data.records.len();
        let pool = self.pool.clone();
        let group = self.group.clone();
        let publisher = self.publisher.clone();
        let metrics = self.metrics.clone();
        let previous = self.handing_over.take();
        let permits = self.handovers.clone();
        let accumulators = self.accumulators.clone();
        let known = self.known.clone();
        let mut recent = self
            .recent
            .take()
            .unwrap_or_else(|| RecentlyStored::new(self.record_ids));
        AtomicResponse::new(Box::pin(
            catch_future(async move {
                faults::hit("committer");
                let result = commit(
                    &pool,
                    &group,
                    publisher.as_ref(),
                    &metrics,
                    batch,
                    &mut recent,
                    &known,
                )
                .await;
                if let Ok((BatchAck::Committed(_), _)) = &result {
                    stage.handled(records);
                }
                let outcome = match result {
                    Ok((ack, Some(posted))) => {
                        // Waits only while HANDOVERS_AHEAD hand-overs are outstanding.
                        let permit = permits.acquire_owned().await.ok();
                        let next = actix::spawn(async move {
                            if let Some(previous) = previous {
                                let _ = previous.await;
                            }
                            hand_over(accumulators, posted, queue).await;
                            drop(permit);
                        });
                        (Ok(ack), Some(next))
                    }
                    Ok((ack, None)) => (Ok(ack), previous),
                    Err(e) => (Err(e), previous),
                };
                (outcome, recent)
            })
            .into_actor(self)
            .map(move |caught, act, ctx| match caught {
                Ok(((result, next), recent)) => {
                    act.handing_over = next;
                    act.cached.set(recent.len());
                    act.recent = Some(recent);
                    result
                }
                Err(panic) => {
                    // A transaction dropped unfinished is rolled back; the source reads
                    // the batch again, and if it had committed, that read is fenced.
                    act.supervision.panicked("committer", &work, &panic);
                    ctx.stop();
                    Err(PipelineError::Panicked {
                        actor: "committer",
                        message: panic.0,
                    })
                }
            }),
        ))
    }
}

/// Commit `batch`; if Postgres refuses some of its records for good, reject those and
/// commit the rest.
async fn commit(
    pool: &Pool,
    group: &str,
    publisher: Option<&Publisher>,
    metrics: &Metrics,
    mut batch: Batch,
    recent: &mut RecentlyStored,
    known: &KnownBuckets,
) -> Result<(BatchAck, Option<Posted>), PipelineError> {
    let started = Instant::now();
    let mut isolated = false;
    loop {
        let result = commit_once(
            pool,
            group,
            publisher,
            metrics,
            &batch.data,
            recent,
            known,
            started,
        )
        .await;
        let error = match result {
            Err(PipelineError::Storage(e)) if e.kind() == ErrorKind::Refused && !isolated => e,
            other => return other,
        };
        isolated = true;
        let refused = isolate_refused(pool, group, &batch.data, recent, known).await?;
        if refused.is_empty() {
            // Not reproduced record by record: left to the source's retry.
            return Err(error.into());
        }
        RecordsRefused {
            partition: batch.data.partition,
            offsets: &refused
                .iter()
                .map(|(i, _)| batch.data.records[*i].source.offset)
                .collect::<Vec<_>>(),
            error: &error,
        }
        .emit(metrics);
        for (i, detail) in refused {
            batch.data.records[i].verdict =
                Verdict::Rejected(Rejection::new(RejectReason::StorageRefused, detail));
        }
    }
}

/// The records of `data` that Postgres refuses for good, each with the refusal. Halves of
/// the batch are written in transactions that are always rolled back, and only a half that
/// is refused is split again, so k bad records among n cost about 2k·log2(n) trial writes.
/// A transient error while searching fails the batch (the source retries it).
async fn isolate_refused(
    pool: &Pool,
    group: &str,
    data: &PartitionBatch,
    recent: &RecentlyStored,
    known: &KnownBuckets,
) -> Result<Vec<(usize, String)>, StorageError> {
    let mut refused = Vec::new();
    let mut todo: Vec<Vec<usize>> = vec![(0..data.records.len()).collect()];
    while let Some(part) = todo.pop() {
        let trial = PartitionBatch {
            topic: data.topic.clone(),
            partition: data.partition,
            from_offset: data.from_offset,
            to_offset: data.to_offset,
            records: part.iter().map(|&i| data.records[i].clone()).collect(),
        };
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        let outcome = batch::write(&tx, group, &trial, recent, known, |_| ()).await;
        drop(tx);
        match outcome {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Refused => {
                if let [only] = part[..] {
                    refused.push((only, e.refusal()));
                } else {
                    let (left, right) = part.split_at(part.len() / 2);
                    todo.push(right.to_vec());
                    todo.push(left.to_vec());
                }
            }
            Err(e) => return Err(e),
        }
    }
    refused.sort_unstable_by_key(|(i, _)| *i);
    Ok(refused)
}

#[allow(clippy::too_many_arguments)]
async fn commit_once(
    pool: &Pool,
    group: &str,
    publisher: Option<&Publisher>,
    metrics: &Metrics,
    data: &PartitionBatch,
    recent: &mut RecentlyStored,
    known: &KnownBuckets,
    started: Instant,
) -> Result<(BatchAck, Option<Posted>), PipelineError> {
    let mut client = pool.get().await.map_err(StorageError::from)?;
    let tx = client.transaction().await.map_err(StorageError::from)?;
    match batch::write(&tx, group, data, recent, known, |inserted| {
        publisher.map(|p| p.start(data, inserted))
    })
    .await?
    {
        Written::Fenced { stored } => {
            tx.rollback().await.map_err(StorageError::from)?;
            BatchFenced {
                partition: data.partition,
                from_offset: data.from_offset,
                stored,
            }
            .emit(metrics);
            Ok((BatchAck::Fenced { stored }, None))
        }
        Written::CatalogBehind { used, needed } => {
            tx.rollback()
                .await
                .map_err(crate::storage::StorageError::from)?;
            Err(PipelineError::CatalogBehind { used, needed })
        }
        Written::Staged {
            summary,
            inserted,
            early: delivery,
            posted,
        } => {
            if let Some(delivery) = delivery {
                delivery.wait().await?;
            }
            tx.commit().await.map_err(StorageError::from)?;
            recent.remember(
                inserted
                    .iter()
                    .filter_map(|&i| match &data.records[i].verdict {
                        Verdict::Rated(r) => Some(r.cdr.record_id.as_str()),
                        _ => None,
                    }),
            );
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
            UsageLate {
                records: posted.late,
            }
            .emit(metrics);
            UsageRated {
                amounts: &rated_by_service(data, &inserted),
            }
            .emit(metrics);
            Ok((BatchAck::Committed(summary), Some(posted)))
        }
    }
}

/// The amounts of the usage rows a commit inserted, by service.
fn rated_by_service(
    data: &crate::domain::batch::PartitionBatch,
    inserted: &[usize],
) -> Vec<(&'static str, rust_decimal::Decimal)> {
    let mut sums: Vec<(&'static str, rust_decimal::Decimal)> = Vec::new();
    for &i in inserted {
        if let Verdict::Rated(r) = &data.records[i].verdict {
            let service = r.cdr.record_type.as_str();
            match sums.iter_mut().find(|(s, _)| *s == service) {
                Some((_, sum)) => *sum += r.rating.amount,
                None => sums.push((service, r.rating.amount)),
            }
        }
    }
    sums
}
