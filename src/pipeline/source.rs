//! The KafkaSource: the only stage that pulls. It reads the raw topic, cuts per-partition
//! batches (by size, or by linger time while fewer than 8 are in flight), sends them down
//! the chain with `send().await` keeping at most `max_inflight` unacknowledged, and on
//! each answer either mirrors the committed offset to Kafka, or rewinds the partition to
//! where Postgres says it stands (fenced, or failed and retried after back-off).
//!
//! If the consumer itself fails, the loop ends with an error, the actor stops, and its
//! supervisor restarts it with a new consumer that starts from the stored offsets.

use super::messages::{Batch, BatchAck, PipelineError};
use super::stages::Validator;
use crate::domain::batch::{PartitionBatch, ProcessedRecord, SourceMeta, Verdict};
use crate::kafka::client::consumer_config;
use crate::kafka::context::{Assignment, Cursor, InFlight, SourceContext};
use crate::telemetry::events::{ActorRestarted, BatchFailed, FailureKind};
use crate::telemetry::metrics::StageMetrics;
use crate::telemetry::Metrics;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    pub database_url: String,
    /// Records per batch at most.
    pub batch_size: usize,
    /// How long a partial batch may wait for more records.
    pub linger: Duration,
    /// Batches sent and not yet acknowledged, at most. Bounds memory when Postgres is
    /// slow: once reached, the source stops fetching.
    pub max_inflight: usize,
    /// Stop once nothing arrived for this long and everything is committed.
    pub exit_when_idle: Option<Duration>,
    /// Kafka group session timeout: how long a killed instance holds its partitions.
    pub session_timeout_ms: u32,
}

/// Why the source finished for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceExit {
    Idle,
    Shutdown,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("Kafka consumer: {0}")]
    Kafka(#[from] KafkaError),
    /// Someone deleted the stored offset of a partition we own; a new consumer claims it
    /// again (from 0: everything already stored then counts as duplicates).
    #[error("the stored offset of partition {0} is missing")]
    OffsetRowMissing(i32),
}

/// Partial batches are cut on linger only while fewer batches than this are in flight.
/// Beyond it the committers are behind: records wait for full batches, which cost far
/// less per record to commit than many small ones. (At a steady 19,000 records/s with 32
/// in flight, cutting every partial batch after the linger queued up small ones: p50 /
/// p99 latency 590 / 1,920 ms, against 280 / 870 ms with this limit and 310 / 1,230 ms
/// with 8 in flight.)
const PARTIAL_CUTS_BELOW: usize = 8;

const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// With `exit_when_idle`, how long an instance that was never assigned a partition waits.
const NEVER_ASSIGNED_WAIT: Duration = Duration::from_secs(30);

fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    (Duration::from_millis(500) * 2u32.saturating_pow(failures.saturating_sub(1).min(8)))
        .min(MAX_BACKOFF)
}

pub struct KafkaSource {
    settings: Arc<SourceSettings>,
    next: Addr<Validator>,
    metrics: Metrics,
    shutdown: watch::Receiver<bool>,
    done: Option<oneshot::Sender<SourceExit>>,
    inflight: Arc<InFlight>,
    /// Consecutive failures of the consumer itself, for the restart back-off.
    failures: Arc<AtomicU32>,
}

impl KafkaSource {
    pub fn new(
        settings: SourceSettings,
        next: Addr<Validator>,
        metrics: Metrics,
        shutdown: watch::Receiver<bool>,
        done: oneshot::Sender<SourceExit>,
    ) -> Self {
        KafkaSource {
            settings: Arc::new(settings),
            next,
            metrics,
            shutdown,
            done: Some(done),
            inflight: Arc::new(InFlight::default()),
            failures: Arc::new(AtomicU32::new(0)),
        }
    }
}

impl Actor for KafkaSource {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let delay = backoff(self.failures.load(Ordering::Relaxed));
        let run = SourceLoop {
            settings: self.settings.clone(),
            next: self.next.clone(),
            source_stage: self.metrics.stage("source"),
            validator_stage: self.metrics.stage("validator"),
            metrics: self.metrics.clone(),
            shutdown: self.shutdown.clone(),
            inflight: self.inflight.clone(),
            failures: self.failures.clone(),
        };
        ctx.spawn(
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                run.run().await
            }
            .into_actor(self)
            .map(|result, act, ctx| match result {
                Ok(exit) => {
                    if let Some(done) = act.done.take() {
                        let _ = done.send(exit);
                    }
                }
                Err(error) => {
                    let failures = act.failures.fetch_add(1, Ordering::Relaxed) + 1;
                    warn!(%error, failures, "Source failed; restarting it with a new consumer.");
                    ctx.stop();
                }
            }),
        );
    }
}

impl Supervised for KafkaSource {
    fn restarting(&mut self, _: &mut Self::Context) {
        ActorRestarted { actor: "source" }.emit(&self.metrics);
    }
}

/// Records of one partition waiting to become a batch.
struct Buffer {
    epoch: u64,
    /// Offset the next record must reach; anything below is a stale redelivery.
    next_expected: i64,
    records: Vec<ProcessedRecord>,
    since: Instant,
}

impl Buffer {
    fn new(cursor: Cursor) -> Self {
        Buffer {
            epoch: cursor.epoch,
            next_expected: cursor.next_from,
            records: Vec::new(),
            since: Instant::now(),
        }
    }
}

/// What comes back for a batch.
struct Ack {
    partition: i32,
    epoch: u64,
    from: i64,
    to: i64,
    result: Result<BatchAck, PipelineError>,
}

struct SourceLoop {
    settings: Arc<SourceSettings>,
    next: Addr<Validator>,
    metrics: Metrics,
    source_stage: StageMetrics,
    validator_stage: StageMetrics,
    shutdown: watch::Receiver<bool>,
    inflight: Arc<InFlight>,
    failures: Arc<AtomicU32>,
}

impl SourceLoop {
    async fn run(mut self) -> Result<SourceExit, SourceError> {
        let s = self.settings.clone();
        let assignment = Arc::new(Assignment::default());
        let context = SourceContext {
            database_url: s.database_url.clone(),
            group: s.group.clone(),
            assignment: assignment.clone(),
            inflight: self.inflight.clone(),
            metrics: self.metrics.clone(),
        };
        let consumer: StreamConsumer<SourceContext> =
            consumer_config(&s.brokers, &s.group, s.session_timeout_ms)
                // Statistics carry each partition's lag (cdrflow_consumer_lag).
                .set("statistics.interval.ms", "5000")
                .create_with_context(context)?;
        consumer.subscribe(&[&s.topic])?;
        info!(topic = %s.topic, group = %s.group, "Source subscribed.");

        let mut buffers: HashMap<i32, Buffer> = HashMap::new();
        let mut pending = FuturesUnordered::new();
        let mut tick = tokio::time::interval(
            s.linger
                .clamp(Duration::from_millis(5), Duration::from_millis(100)),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_activity = Instant::now();
        let mut was_assigned = false;
        let started = Instant::now();
        let mut paused_until: Option<Instant> = None;
        let mut stopping = *self.shutdown.borrow();
        let mut consecutive_failures = 0u32;

        loop {
            self.metrics.inflight_batches.set(pending.len() as i64);
            let now = Instant::now();
            if paused_until.is_some_and(|t| now >= t) {
                paused_until = None;
                self.metrics.source_backoff_seconds.set(0);
            }
            let fetching = !stopping && pending.len() < s.max_inflight && paused_until.is_none();
            tokio::select! {
                Some(ack) = pending.next(), if !pending.is_empty() => {
                    let ack: Ack = ack;
                    match ack.result {
                        Ok(BatchAck::Committed(_)) => {
                            consecutive_failures = 0;
                            self.failures.store(0, Ordering::Relaxed);
                            if assignment.get(ack.partition).is_some() {
                                let mut tpl = TopicPartitionList::new();
                                if tpl.add_partition_offset(&s.topic, ack.partition, Offset::Offset(ack.to)).is_ok() {
                                    let _ = consumer.commit(&tpl, CommitMode::Async);
                                }
                            }
                        }
                        Ok(BatchAck::Fenced { stored }) => {
                            if !stopping && assignment.get(ack.partition).is_some_and(|c| c.epoch == ack.epoch) {
                                let Some(target) = stored else {
                                    return Err(SourceError::OffsetRowMissing(ack.partition));
                                };
                                buffers.remove(&ack.partition);
                                assignment.reset(ack.partition, target);
                                consumer.seek(&s.topic, ack.partition, Offset::Offset(target), Duration::from_secs(10))?;
                            }
                        }
                        Err(error) => {
                            // A batch priced with a catalog older than a rerate replay
                            // asked for failed nowhere: the rater is loading the newer
                            // one, so it is read again after the shortest back-off, and
                            // the back-off of real failures does not grow with it.
                            let wait = if let PipelineError::CatalogBehind { .. } = error {
                                backoff(1)
                            } else {
                                consecutive_failures += 1;
                                backoff(consecutive_failures)
                            };
                            BatchFailed {
                                partition: ack.partition,
                                from_offset: ack.from,
                                kind: match error {
                                    PipelineError::Storage(_) => FailureKind::Database,
                                    PipelineError::Publish(_) => FailureKind::Publish,
                                    PipelineError::StageDown(_) => FailureKind::Pipeline,
                                    PipelineError::CatalogBehind { .. } => FailureKind::Catalog,
                                },
                                error: &error,
                                backoff_secs: wait.as_secs().max(1),
                            }
                            .emit(&self.metrics);
                            if !stopping {
                                paused_until = Some(Instant::now() + wait);
                                last_activity = Instant::now() + wait;
                                if assignment.get(ack.partition).is_some_and(|c| c.epoch == ack.epoch) {
                                    buffers.remove(&ack.partition);
                                    assignment.reset(ack.partition, ack.from);
                                    consumer.seek(&s.topic, ack.partition, Offset::Offset(ack.from), Duration::from_secs(10))?;
                                }
                            }
                        }
                    }
                }
                _ = self.shutdown.changed(), if !stopping => {
                    info!("Shutdown requested: no more fetching; finishing in-flight batches.");
                    stopping = true;
                }
                msg = consumer.recv(), if fetching => {
                    match msg {
                        Ok(m) => {
                            last_activity = Instant::now();
                            let p = m.partition();
                            let Some(cursor) = assignment.get(p) else { continue };
                            let buf = buffers.entry(p).or_insert_with(|| Buffer::new(cursor));
                            if buf.epoch != cursor.epoch {
                                *buf = Buffer::new(cursor);
                            }
                            if m.offset() < buf.next_expected {
                                continue;
                            }
                            if buf.records.is_empty() {
                                buf.since = Instant::now();
                                // Room for a whole batch at once: grown by doubling, the
                                // records (a few hundred bytes each) were copied 13 times.
                                buf.records.reserve(s.batch_size);
                            }
                            buf.next_expected = m.offset() + 1;
                            buf.records.push(ProcessedRecord {
                                source: SourceMeta {
                                    offset: m.offset(),
                                    key: m.key().map(<[u8]>::to_vec),
                                    payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                                    timestamp: m.timestamp().to_millis().and_then(DateTime::<Utc>::from_timestamp_millis),
                                },
                                verdict: Verdict::Received,
                            });
                            if buf.records.len() >= s.batch_size {
                                if let Some(batch) = self.cut(&assignment, &mut buffers, p) {
                                    pending.push(batch);
                                }
                            }
                        }
                        Err(error) => {
                            // Transport hiccups are retried by librdkafka; report and go on.
                            warn!(%error, "Kafka consumer error.");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                _ = tick.tick() => {
                    if !was_assigned && !assignment.owned().is_empty() {
                        was_assigned = true;
                        last_activity = Instant::now();
                    }
                    let due: Vec<i32> = buffers
                        .iter()
                        .filter(|(_, b)| !b.records.is_empty() && (stopping || b.since.elapsed() >= s.linger))
                        .map(|(p, _)| *p)
                        .collect();
                    let limit = if stopping {
                        s.max_inflight
                    } else {
                        s.max_inflight.min(PARTIAL_CUTS_BELOW)
                    };
                    for p in due {
                        if pending.len() >= limit {
                            break;
                        }
                        if let Some(batch) = self.cut(&assignment, &mut buffers, p) {
                            pending.push(batch);
                        }
                    }
                    let drained = pending.is_empty() && buffers.values().all(|b| b.records.is_empty());
                    if stopping && drained {
                        info!("All in-flight batches finished.");
                        return Ok(SourceExit::Shutdown);
                    }
                    if let Some(idle) = s.exit_when_idle {
                        // Joining the group can take longer than the idle period (a
                        // crashed member's session must expire first); an instance that
                        // never gets a partition still stops, after a generous wait.
                        let settled = was_assigned || started.elapsed() >= idle.max(NEVER_ASSIGNED_WAIT);
                        if settled && drained && paused_until.is_none() && Instant::now() >= last_activity && last_activity.elapsed() >= idle {
                            info!(idle_secs = idle.as_secs(), "No records for the idle period and everything committed.");
                            return Ok(SourceExit::Idle);
                        }
                    }
                }
            }
        }
    }

    /// Turn a partition's buffer into a batch in flight, if the partition is still ours
    /// at the buffer's epoch.
    fn cut(
        &self,
        assignment: &Assignment,
        buffers: &mut HashMap<i32, Buffer>,
        partition: i32,
    ) -> Option<impl std::future::Future<Output = Ack>> {
        let buf = buffers.remove(&partition)?;
        let cursor = assignment.get(partition)?;
        if cursor.epoch != buf.epoch || buf.records.is_empty() {
            return None;
        }
        let from = cursor.next_from;
        let to = buf.next_expected;
        assignment.advance(partition, cursor.epoch, to);
        // The next buffer continues where this batch ends.
        buffers.insert(
            partition,
            Buffer::new(Cursor {
                epoch: cursor.epoch,
                next_from: to,
            }),
        );
        let batch = Batch {
            data: PartitionBatch {
                topic: self.settings.topic.clone(),
                partition,
                from_offset: from,
                to_offset: to,
                records: buf.records,
            },
            epoch: cursor.epoch,
            guard: self.inflight.enter(),
        };
        self.source_stage.handled(batch.data.records.len());
        self.validator_stage.enqueued();
        let request = self.next.send(batch);
        Some(async move {
            Ack {
                partition,
                epoch: cursor.epoch,
                from,
                to,
                result: request
                    .await
                    .unwrap_or(Err(PipelineError::StageDown("validator"))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_half_a_second_and_caps_at_thirty() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(20), MAX_BACKOFF);
    }
}
