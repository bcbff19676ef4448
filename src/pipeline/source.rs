//! The KafkaSource: the only stage that pulls. It reads the raw topic, cuts per-partition
//! batches (by size, or by linger time while fewer than 8 are in flight), sends them down
//! the chain with `send().await` keeping at most `max_inflight` unacknowledged, and no
//! more than `max_inflight_bytes` of them by weight (`pipeline::memory`), and on
//! each answer either mirrors the committed offset to Kafka, or rewinds the partition to
//! where Postgres says it stands (fenced, or failed and retried after back-off). It never
//! stops polling the consumer, so rebalances and shutdown are served at once: back-pressure
//! pauses partitions instead (`Flow`), and newly assigned partitions are handed to the
//! consumer once their stored offsets are read, here rather than in the rebalance callback.
//!
//! Every new position of a partition (assignment, seek) and every jump in its offsets
//! (librdkafka resetting a position the broker's log no longer has) is checked against the
//! broker's log start and end. A position past the end (topic recreated, log truncated)
//! holds the partition: it is paused, nothing of it is consumed or skipped, and it is
//! resumed once `cdrflow replay` moves its stored offset. A position before the start
//! (records deleted unread) is recorded as a gap and consumption goes on from the start.
//!
//! If the consumer itself fails, the loop ends with an error, the actor stops, and its
//! supervisor restarts it with a new consumer that starts from the stored offsets.

use super::faults;
use super::memory::MemoryBudget;
use super::messages::{Batch, BatchAck, PipelineError};
use super::stages::Validator;
use super::supervision::{catch_future, Supervision};
use crate::domain::batch::{PartitionBatch, ProcessedRecord, SourceMeta, Verdict};
use crate::kafka::client::consumer_config;
use crate::kafka::context::{position, Assignment, Cursor, InFlight, Position, SourceContext};
use crate::kafka::KafkaSettings;
use crate::retry::Backoff;
use crate::storage::{self, offsets};
use crate::telemetry::events::{BatchFailed, OffsetBeyondLogEnd, OffsetGapRecorded};
use crate::telemetry::metrics::StageMetrics;
use crate::telemetry::Metrics;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures::future::{FutureExt, LocalBoxFuture};
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub kafka: KafkaSettings,
    pub topic: String,
    pub group: String,
    pub database_url: String,
    /// Records per batch at most.
    pub batch_size: usize,
    /// How long a partial batch may wait for more records.
    pub linger: Duration,
    /// Batches sent and not yet acknowledged, at most. Bounds memory when Postgres is
    /// slow: once reached, the source pauses its partitions.
    pub max_inflight: usize,
    /// What the batches in flight may weigh at most (`pipeline::memory`): the same
    /// bound by bytes, whatever the size of the records. One batch always goes.
    pub max_inflight_bytes: usize,
    /// librdkafka's queue of prefetched records, in kilobytes.
    pub prefetch_kbytes: usize,
    /// Stop once nothing arrived for this long and everything is committed.
    pub exit_when_idle: Option<Duration>,
    /// Kafka group session timeout: how long a killed instance holds its partitions.
    pub session_timeout_ms: u32,
}

/// Why the source finished for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceExit {
    Idle,
    /// Idle, with partitions held because their stored offset is past the log end.
    Held,
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
    #[error("stored offsets: {0}")]
    Storage(#[from] storage::StorageError),
}

/// Partial batches are cut on linger only while fewer batches than this are in flight.
/// Beyond it the committers are behind: records wait for full batches, which cost far
/// less per record to commit than many small ones. Cutting every partial batch under a
/// steady load queues up small ones and raises the latency it was meant to lower.
const PARTIAL_CUTS_BELOW: usize = 8;

/// How long a partition waits after its batches failed, and a restarted consumer after
/// its predecessor failed, by the failures in a row.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
/// With `exit_when_idle`, how long an instance that was never assigned a partition waits.
const NEVER_ASSIGNED_WAIT: Duration = Duration::from_secs(30);
/// How often new positions are checked against the broker's log, and held partitions
/// looked at again (the operator's replay, a gap to record once Postgres answers).
const CHECK_EVERY: Duration = Duration::from_secs(1);
const REVISIT_EVERY: Duration = Duration::from_secs(2);
/// How long one look-up of a partition's log start and end may take.
const LOG_BOUNDS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long reading the stored offsets of newly assigned partitions may take before it is
/// tried again; they are not fetched meanwhile.
const OFFSET_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// After a shutdown is asked for, how long batches in flight are waited for: the
/// consumer's close and the last hand-overs fit in the daemon's shutdown grace after it.
const STOP_GRACE: Duration = Duration::from_secs(6);
/// A seek waits for librdkafka's own threads, never for the network.
const SEEK_TIMEOUT: Duration = Duration::from_secs(5);

pub struct KafkaSource {
    settings: Arc<SourceSettings>,
    next: Addr<Validator>,
    metrics: Metrics,
    shutdown: watch::Receiver<bool>,
    done: Option<oneshot::Sender<SourceExit>>,
    inflight: Arc<InFlight>,
    /// Consecutive failures of the consumer itself, for the restart back-off.
    failures: Arc<AtomicU32>,
    supervision: Supervision,
}

impl KafkaSource {
    pub fn new(
        settings: SourceSettings,
        next: Addr<Validator>,
        metrics: Metrics,
        shutdown: watch::Receiver<bool>,
        done: oneshot::Sender<SourceExit>,
        supervision: Supervision,
    ) -> Self {
        KafkaSource {
            settings: Arc::new(settings),
            next,
            metrics,
            shutdown,
            done: Some(done),
            inflight: Arc::new(InFlight::default()),
            failures: Arc::new(AtomicU32::new(0)),
            supervision,
        }
    }
}

impl Actor for KafkaSource {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.supervision.recover("source", ctx);
        let delay = BACKOFF.after(self.failures.load(Ordering::Relaxed));
        let run = SourceLoop {
            settings: self.settings.clone(),
            next: self.next.clone(),
            source_stage: self.metrics.stage("source"),
            validator_stage: self.metrics.stage("validator"),
            metrics: self.metrics.clone(),
            shutdown: self.shutdown.clone(),
            inflight: self.inflight.clone(),
            failures: self.failures.clone(),
            weight: Cell::new(0),
        };
        ctx.spawn(
            catch_future(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                run.run().await
            })
            .into_actor(self)
            .map(|result, act, ctx| match result {
                Ok(Ok(exit)) => {
                    if let Some(done) = act.done.take() {
                        let _ = done.send(exit);
                    }
                }
                Ok(Err(error)) => {
                    let failures = act.failures.fetch_add(1, Ordering::Relaxed) + 1;
                    warn!(%error, failures, "Source failed; restarting it with a new consumer.");
                    ctx.stop();
                }
                // Its batches in flight are answered to nobody; the new consumer starts
                // from the stored offsets, so none is lost or stored twice.
                // The restart waits out the supervision's back-off.
                Err(panic) => {
                    act.supervision
                        .panicked("source", "the consumer loop", &panic);
                    ctx.stop();
                }
            }),
        );
    }
}

impl Supervised for KafkaSource {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.supervision.restarting("source");
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

/// A partition held because its position is not in the broker's log.
struct Held {
    /// The assignment epoch it was held under; once the partition moves (rebalance) the
    /// hold ends and the new position is checked afresh.
    epoch: u64,
    /// The stored offset last found past the log end. The partition stays held until the
    /// stored offset changes (`cdrflow replay`), even once the new log grows past it.
    beyond_end_at: Option<i64>,
}

/// What the source knows of its partitions' positions against the broker's log.
#[derive(Default)]
struct LogChecks {
    /// Per partition, the (epoch, offset) last found in the log: asked once, not per record.
    checked: HashMap<i32, (u64, i64)>,
    held: HashMap<i32, Held>,
    /// Batches in flight per partition: a held partition is looked at again only once its
    /// batches are answered, so that its stored offset is final.
    inflight: HashMap<i32, usize>,
    /// For reading a held partition's stored offset and recording gaps; opened on first use.
    db: Option<tokio_postgres::Client>,
    last_check: Option<Instant>,
    last_revisit: Option<Instant>,
    /// A partition was paused or resumed here, outside [`Flow`]: it applies its whole
    /// state again.
    paused_here: bool,
}

/// The source's consumer, shared with the blocking look-ups of log bounds.
type SharedConsumer = Arc<StreamConsumer<SourceContext>>;

/// The broker's log start and end of `partition`, asked on a blocking thread: librdkafka's
/// call waits for the answer.
async fn log_bounds(
    consumer: &SharedConsumer,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), KafkaError> {
    let (consumer, topic) = (consumer.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        consumer.fetch_watermarks(&topic, partition, LOG_BOUNDS_TIMEOUT)
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
}

fn one_partition(topic: &str, partition: i32) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    tpl
}

/// Back-pressure, per partition: which partitions librdkafka may fetch. The consumer is
/// always polled, so rebalances and shutdown are served at once; what must wait is paused
/// instead: held partitions, those in back-off after a failure, those with their share of
/// `max_inflight` in flight (so one partition's backlog cannot starve the others), and all
/// of them once `max_inflight` or `max_inflight_bytes` is reached or the source is
/// stopping.
#[derive(Default)]
struct Flow {
    /// What librdkafka was last told, and at which rebalance (a rebalance resets it).
    paused: BTreeSet<i32>,
    assigned: Vec<i32>,
    rebalances: u64,
}

impl Flow {
    /// Apply the whole state at the next call, whatever was applied before.
    fn forget(&mut self) {
        self.rebalances = u64::MAX;
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        consumer: &SharedConsumer,
        s: &SourceSettings,
        assignment: &Assignment,
        checks: &LogChecks,
        backoff_until: &HashMap<i32, Instant>,
        pending: usize,
        weight: usize,
        stopping: bool,
    ) {
        let rebalances = assignment.rebalances();
        let assigned = assignment.owned();
        let now = Instant::now();
        let full = stopping || pending >= s.max_inflight || weight >= s.max_inflight_bytes;
        let share = s.max_inflight.div_ceil(assigned.len().max(1)).max(1);
        let paused: BTreeSet<i32> = assigned
            .iter()
            .copied()
            .filter(|p| {
                full || checks.held.contains_key(p)
                    || backoff_until.get(p).is_some_and(|t| *t > now)
                    || checks.inflight.get(p).is_some_and(|n| *n >= share)
            })
            .collect();
        if rebalances == self.rebalances && paused == self.paused && assigned == self.assigned {
            return;
        }
        let (mut stop, mut go) = (TopicPartitionList::new(), TopicPartitionList::new());
        for p in &assigned {
            if paused.contains(p) {
                stop.add_partition(&s.topic, *p);
            } else {
                go.add_partition(&s.topic, *p);
            }
        }
        let applied = [(stop, true), (go, false)].into_iter().all(|(tpl, pause)| {
            if tpl.count() == 0 {
                return true;
            }
            let result = if pause {
                consumer.pause(&tpl)
            } else {
                consumer.resume(&tpl)
            };
            // A partition revoked in between: tried again at the next change or tick.
            result
                .inspect_err(|error| warn!(%error, pause, "Failed to pause or resume partitions."))
                .is_ok()
        });
        if applied {
            (self.paused, self.assigned, self.rebalances) = (paused, assigned, rebalances);
        } else {
            self.rebalances = u64::MAX;
        }
    }
}

/// What comes back for a batch.
struct Ack {
    partition: i32,
    /// What the batch weighed against `max_inflight_bytes`.
    weight: usize,
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
    /// What the batches in flight weigh (`pipeline::memory::MemoryBudget::weigh`).
    weight: Cell<usize>,
}

impl SourceLoop {
    /// Whether another batch may go while `pending` are in flight, with `limit` the count
    /// allowed: within the count and the bytes, or none in flight at all (a batch heavier
    /// than the whole bound still goes, alone).
    fn room(&self, pending: usize, limit: usize) -> bool {
        pending == 0 || (pending < limit && self.weight.get() < self.settings.max_inflight_bytes)
    }

    async fn run(mut self) -> Result<SourceExit, SourceError> {
        let s = self.settings.clone();
        let assignment = Arc::new(Assignment::default());
        let stopping_flag = Arc::new(AtomicBool::new(false));
        let context = SourceContext {
            stopping: stopping_flag.clone(),
            assignment: assignment.clone(),
            inflight: self.inflight.clone(),
            metrics: self.metrics.clone(),
        };
        let consumer: SharedConsumer = Arc::new(
            consumer_config(&s.kafka, &s.group, s.session_timeout_ms, s.prefetch_kbytes)
                // Statistics carry each partition's lag (cdrflow_consumer_lag).
                .set("statistics.interval.ms", "5000")
                .create_with_context(context)?,
        );
        consumer.subscribe(&[&s.topic])?;
        info!(topic = %s.topic, group = %s.group, "Source subscribed.");
        self.metrics
            .inflight_bytes_limit
            .set(s.max_inflight_bytes as i64);

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
        // Partitions whose last batch failed, paused until their back-off ends.
        let mut backoff_until: HashMap<i32, Instant> = HashMap::new();
        let mut stopping = *self.shutdown.borrow();
        stopping_flag.store(stopping, Ordering::Relaxed);
        // Once stopping, how long batches in flight are waited for.
        let mut stop_by = stopping.then(|| Instant::now() + STOP_GRACE);
        let mut consecutive_failures = 0u32;
        let mut checks = LogChecks::default();
        // Stored offsets of newly assigned partitions, read here and not in the rebalance
        // callback: one read at a time, retried with back-off while Postgres is away.
        let offsets_pool = storage::pool(&s.database_url, 1)?;
        let mut offset_reads = FuturesUnordered::new();
        let mut offset_read_failures = 0u32;
        let mut next_offset_read = Instant::now();
        let mut flow = Flow::default();
        let mut reflow = true;

        loop {
            self.metrics.inflight_batches.set(pending.len() as i64);
            self.metrics.inflight_bytes.set(self.weight.get() as i64);
            if reflow || checks.paused_here {
                reflow = false;
                if std::mem::take(&mut checks.paused_here) {
                    flow.forget();
                }
                flow.apply(
                    &consumer,
                    &s,
                    &assignment,
                    &checks,
                    &backoff_until,
                    pending.len(),
                    self.weight.get(),
                    stopping,
                );
            }
            tokio::select! {
                Some((asked, read)) = offset_reads.next(), if !offset_reads.is_empty() => {
                    let (asked, read): (BTreeMap<i32, u64>, Result<BTreeMap<i32, i64>, storage::StorageError>) = (asked, read);
                    reflow = true;
                    match read {
                        // Read for the latest rebalance: the whole assignment is applied at
                        // once, each partition from its stored offset. A later rebalance
                        // makes this read moot; the next tick reads again.
                        Ok(stored) if asked == assignment.awaiting() => {
                            offset_read_failures = 0;
                            let mut tpl = TopicPartitionList::new();
                            for p in asked.keys() {
                                let offset = stored.get(p).copied().unwrap_or(0);
                                tpl.add_partition_offset(&s.topic, *p, Offset::Offset(offset))?;
                            }
                            consumer.assign(&tpl)?;
                            for (p, rebalance) in asked {
                                let offset = stored.get(&p).copied().unwrap_or(0);
                                if assignment.offset_read(p, rebalance, offset).is_some() {
                                    buffers.remove(&p);
                                    info!(topic = %s.topic, partition = p, offset, "Partition assigned; resuming from the stored offset.");
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(error) => {
                            offset_read_failures += 1;
                            let wait = BACKOFF.after(offset_read_failures);
                            next_offset_read = Instant::now() + wait;
                            warn!(%error, retry_in_ms = wait.as_millis() as u64, "Failed to read the stored offsets of assigned partitions; they wait.");
                        }
                    }
                }
                Some(ack) = pending.next(), if !pending.is_empty() => {
                    let ack: Ack = ack;
                    reflow = true;
                    self.weight.set(self.weight.get().saturating_sub(ack.weight));
                    if let Some(n) = checks.inflight.get_mut(&ack.partition) {
                        *n = n.saturating_sub(1);
                    }
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
                                consumer.seek(&s.topic, ack.partition, Offset::Offset(target), SEEK_TIMEOUT)?;
                            }
                        }
                        Err(error) => {
                            // A batch priced with a catalog older than a rerate replay
                            // asked for failed nowhere: the rater is loading the newer
                            // one, so it is read again after the shortest back-off, and
                            // the back-off of real failures does not grow with it.
                            let wait = if let PipelineError::CatalogBehind { .. } = error {
                                BACKOFF.after(1)
                            } else {
                                consecutive_failures += 1;
                                BACKOFF.after(consecutive_failures)
                            };
                            BatchFailed {
                                partition: ack.partition,
                                from_offset: ack.from,
                                kind: error.kind(),
                                error: &error,
                                backoff_secs: wait.as_secs().max(1),
                            }
                            .emit(&self.metrics);
                            if !stopping {
                                backoff_until.insert(ack.partition, Instant::now() + wait);
                                last_activity = Instant::now() + wait;
                                if assignment.get(ack.partition).is_some_and(|c| c.epoch == ack.epoch) {
                                    buffers.remove(&ack.partition);
                                    assignment.reset(ack.partition, ack.from);
                                    consumer.seek(&s.topic, ack.partition, Offset::Offset(ack.from), SEEK_TIMEOUT)?;
                                }
                            }
                        }
                    }
                }
                _ = self.shutdown.changed(), if !stopping => {
                    info!("Shutdown requested: no more fetching; finishing in-flight batches.");
                    stopping = true;
                    stopping_flag.store(true, Ordering::Relaxed);
                    stop_by = Some(Instant::now() + STOP_GRACE);
                    reflow = true;
                }
                // Always polled, also with every partition paused: rebalances are served
                // here. Back-pressure pauses partitions instead (`Flow`).
                msg = consumer.recv() => {
                    match msg {
                        Ok(_) if stopping => {}
                        Ok(m) => {
                            last_activity = Instant::now();
                            let p = m.partition();
                            let Some(cursor) = assignment.get(p) else { continue };
                            if checks.held.contains_key(&p) {
                                continue;
                            }
                            let next = match buffers.get(&p) {
                                Some(b) if b.epoch == cursor.epoch => b.next_expected,
                                _ => cursor.next_from,
                            };
                            if m.offset() == next {
                                // The position is a record of the log: nothing to ask.
                                if checks.checked.get(&p).map(|c| c.0) != Some(cursor.epoch) {
                                    checks.checked.insert(p, (cursor.epoch, next));
                                }
                            } else if checks.checked.get(&p) != Some(&(cursor.epoch, next)) {
                                // A jump: a stale record after a seek, a hole the log may
                                // have (compaction, transaction markers), or librdkafka
                                // resetting a position the log no longer has.
                                if self.log_position(&consumer, p, next).await == Some(Position::InLog) {
                                    checks.checked.insert(p, (cursor.epoch, next));
                                } else {
                                    if let Some(batch) = self.hold(&consumer, &assignment, &mut buffers, &mut checks, p) {
                                        pending.push(batch);
                                    }
                                    self.revisit(&consumer, &assignment, &mut buffers, &mut checks, p).await?;
                                    reflow = true;
                                    continue;
                                }
                            }
                            if m.offset() < next {
                                continue;
                            }
                            let buf = buffers.entry(p).or_insert_with(|| Buffer::new(cursor));
                            if buf.epoch != cursor.epoch {
                                *buf = Buffer::new(cursor);
                            }
                            if buf.records.is_empty() {
                                buf.since = Instant::now();
                                // Room for a whole batch at once: grown by doubling, the
                                // records would be copied again at every doubling.
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
                            // Beyond `max_inflight` a full buffer waits for the tick: only
                            // records fetched before the partition was paused get here.
                            if buf.records.len() >= s.batch_size && self.room(pending.len(), s.max_inflight) {
                                if let Some(batch) = self.cut(&assignment, &mut buffers, &mut checks.inflight, p) {
                                    pending.push(batch);
                                    reflow = true;
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
                    reflow = true;
                    let now = Instant::now();
                    if !backoff_until.is_empty() {
                        let waiting = backoff_until.len();
                        backoff_until.retain(|_, until| *until > now);
                        if backoff_until.len() < waiting {
                            // A partition out of its back-off is read again from its
                            // stored offset: the idle period starts over, so that
                            // `exit_when_idle` waits for the records read again.
                            last_activity = now;
                        }
                        if backoff_until.is_empty() {
                            self.metrics.source_backoff_seconds.set(0);
                        }
                    }
                    let awaiting = assignment.awaiting();
                    if !stopping && !awaiting.is_empty() && offset_reads.is_empty() && now >= next_offset_read {
                        let (pool, group, topic) = (offsets_pool.clone(), s.group.clone(), s.topic.clone());
                        offset_reads.push(async move {
                            let partitions: Vec<i32> = awaiting.keys().copied().collect();
                            let read = tokio::time::timeout(OFFSET_READ_TIMEOUT, async {
                                let client = pool.get().await?;
                                offsets::claim(&**client, &group, &topic, &partitions).await
                            })
                            .await
                            .unwrap_or_else(|_| Err(storage::StorageError::Timeout(OFFSET_READ_TIMEOUT)));
                            (awaiting, read)
                        }.boxed_local());
                    }
                    if !was_assigned && !assignment.owned().is_empty() {
                        was_assigned = true;
                        last_activity = Instant::now();
                    }
                    // Full buffers first, then partial ones.
                    let mut due: Vec<(bool, i32)> = buffers
                        .iter()
                        .filter(|(_, b)| !b.records.is_empty() && (stopping || b.since.elapsed() >= s.linger || b.records.len() >= s.batch_size))
                        .map(|(p, b)| (b.records.len() < s.batch_size, *p))
                        .collect();
                    due.sort_unstable();
                    for (partial, p) in due {
                        let limit = if stopping || !partial {
                            s.max_inflight
                        } else {
                            s.max_inflight.min(PARTIAL_CUTS_BELOW)
                        };
                        if !self.room(pending.len(), limit) {
                            break;
                        }
                        if let Some(batch) = self.cut(&assignment, &mut buffers, &mut checks.inflight, p) {
                            pending.push(batch);
                        }
                    }
                    if !stopping {
                        for batch in self.check_positions(&consumer, &assignment, &mut buffers, &mut checks).await? {
                            pending.push(batch);
                        }
                    }
                    self.metrics.held_partitions.set(checks.held.len() as i64);
                    let drained = pending.is_empty() && buffers.values().all(|b| b.records.is_empty());
                    if stopping && !drained && stop_by.is_some_and(|t| Instant::now() >= t) {
                        warn!(
                            batches = pending.len(),
                            "Batches still in flight at the end of the shutdown grace; they are read again from the stored offsets."
                        );
                        return Ok(SourceExit::Shutdown);
                    }
                    if stopping && drained {
                        info!("All in-flight batches finished.");
                        return Ok(SourceExit::Shutdown);
                    }
                    if let Some(idle) = s.exit_when_idle {
                        // Joining the group can take longer than the idle period (a
                        // crashed member's session must expire first); an instance that
                        // never gets a partition still stops, after a generous wait.
                        let settled = was_assigned || started.elapsed() >= idle.max(NEVER_ASSIGNED_WAIT);
                        if settled && drained && backoff_until.is_empty() && assignment.awaiting().is_empty() && Instant::now() >= last_activity && last_activity.elapsed() >= idle {
                            if !checks.held.is_empty() {
                                let mut held: Vec<i32> = checks.held.keys().copied().collect();
                                held.sort_unstable();
                                warn!(idle_secs = idle.as_secs(), ?held, "No records for the idle period, but partitions are held.");
                                return Ok(SourceExit::Held);
                            }
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
        inflight: &mut HashMap<i32, usize>,
        partition: i32,
    ) -> Option<LocalBoxFuture<'static, Ack>> {
        let buf = buffers.remove(&partition)?;
        let cursor = assignment.get(partition)?;
        if cursor.epoch != buf.epoch || buf.records.is_empty() {
            return None;
        }
        faults::hit("source");
        *inflight.entry(partition).or_default() += 1;
        let payloads: usize = buf.records.iter().map(|r| r.source.payload.len()).sum();
        let weight = MemoryBudget::weigh(buf.records.len(), payloads);
        self.weight.set(self.weight.get() + weight);
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
        Some(
            async move {
                Ack {
                    partition,
                    weight,
                    epoch: cursor.epoch,
                    from,
                    to,
                    result: request
                        .await
                        .unwrap_or(Err(PipelineError::StageDown("validator"))),
                }
            }
            .boxed_local(),
        )
    }

    /// Where `offset` stands in the broker's log of `partition`; None when the broker did
    /// not answer.
    async fn log_position(
        &self,
        consumer: &SharedConsumer,
        partition: i32,
        offset: i64,
    ) -> Option<Position> {
        match log_bounds(consumer, &self.settings.topic, partition).await {
            Ok((low, high)) => Some(position(offset, low, high)),
            Err(error) => {
                warn!(%error, partition, "Failed to read the log start and end of a partition.");
                None
            }
        }
    }

    /// Check the new positions (assignments, seeks) against the broker's log, and look
    /// at the held partitions again. Returns the batches cut from partitions it held.
    async fn check_positions(
        &self,
        consumer: &SharedConsumer,
        assignment: &Assignment,
        buffers: &mut HashMap<i32, Buffer>,
        checks: &mut LogChecks,
    ) -> Result<Vec<LocalBoxFuture<'static, Ack>>, SourceError> {
        let mut cut = Vec::new();
        let now = Instant::now();
        if checks.last_check.is_some_and(|t| now < t + CHECK_EVERY) {
            return Ok(cut);
        }
        checks.last_check = Some(now);
        // A hold ends when its partition moves; the new owner (maybe us) checks afresh.
        let moved: Vec<i32> = checks
            .held
            .iter()
            .filter(|(p, h)| assignment.get(**p).is_none_or(|c| c.epoch != h.epoch))
            .map(|(p, _)| *p)
            .collect();
        // Resumed, if it is still ours, by the flow control.
        for p in moved {
            checks.held.remove(&p);
        }
        for p in assignment.owned() {
            let Some(cursor) = assignment.get(p) else {
                continue;
            };
            if checks.held.contains_key(&p)
                || checks.checked.get(&p).map(|c| c.0) == Some(cursor.epoch)
            {
                continue;
            }
            match self.log_position(consumer, p, cursor.next_from).await {
                Some(Position::InLog) => {
                    checks.checked.insert(p, (cursor.epoch, cursor.next_from));
                }
                Some(_) => {
                    cut.extend(self.hold(consumer, assignment, buffers, checks, p));
                    self.revisit(consumer, assignment, buffers, checks, p)
                        .await?;
                }
                // Asked again at the next check.
                None => {}
            }
        }
        if checks.last_revisit.is_none_or(|t| now >= t + REVISIT_EVERY) {
            checks.last_revisit = Some(now);
            let held: Vec<i32> = checks.held.keys().copied().collect();
            for p in held {
                self.revisit(consumer, assignment, buffers, checks, p)
                    .await?;
            }
        }
        Ok(cut)
    }

    /// Hold `partition`: pause it, so nothing more of it is fetched, until [`Self::revisit`]
    /// knows where it goes on. What it had buffered goes on as a batch (records read from
    /// the log are committed); the hold starts a new epoch at the buffer's end, so the
    /// answers of batches still in flight no longer move the partition.
    fn hold(
        &self,
        consumer: &SharedConsumer,
        assignment: &Assignment,
        buffers: &mut HashMap<i32, Buffer>,
        checks: &mut LogChecks,
        partition: i32,
    ) -> Option<LocalBoxFuture<'static, Ack>> {
        let batch = self.cut(assignment, buffers, &mut checks.inflight, partition);
        buffers.remove(&partition);
        let cursor = assignment.get(partition)?;
        let cursor = assignment.reset(partition, cursor.next_from);
        checks.held.insert(
            partition,
            Held {
                epoch: cursor.epoch,
                beyond_end_at: None,
            },
        );
        if let Err(error) = consumer.pause(&one_partition(&self.settings.topic, partition)) {
            warn!(%error, partition, "Failed to pause a held partition; its records are dropped until it resumes.");
        }
        checks.paused_here = true;
        batch
    }

    /// Look at a held partition again, once its batches in flight are answered: its
    /// stored offset (Postgres) against the broker's log. Past the end it stays held (the
    /// ERROR says what to run); before the start the gap is recorded and it goes on from
    /// the log start; in the log, after an operator's replay, it goes on from there.
    async fn revisit(
        &self,
        consumer: &SharedConsumer,
        assignment: &Assignment,
        buffers: &mut HashMap<i32, Buffer>,
        checks: &mut LogChecks,
        partition: i32,
    ) -> Result<(), SourceError> {
        let s = &self.settings;
        let Some(epoch) = checks.held.get(&partition).map(|h| h.epoch) else {
            return Ok(());
        };
        if assignment.get(partition).is_none_or(|c| c.epoch != epoch)
            || checks.inflight.get(&partition).is_some_and(|n| *n > 0)
        {
            return Ok(());
        }
        let stored = match held_stored_offset(checks, s, partition).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return Err(SourceError::OffsetRowMissing(partition)),
            Err(error) => {
                warn!(%error, partition, "Failed to read the stored offset of a held partition; trying again.");
                checks.db = None;
                return Ok(());
            }
        };
        let (low, high) = match log_bounds(consumer, &s.topic, partition).await {
            Ok(bounds) => bounds,
            Err(error) => {
                warn!(%error, partition, "Failed to read the log start and end of a held partition; trying again.");
                return Ok(());
            }
        };
        let Some(held) = checks.held.get_mut(&partition) else {
            return Ok(());
        };
        match position(stored, low, high) {
            Position::BeyondEnd => {
                if held.beyond_end_at != Some(stored) {
                    held.beyond_end_at = Some(stored);
                    OffsetBeyondLogEnd {
                        topic: &s.topic,
                        partition,
                        group: &s.group,
                        stored,
                        log_start: low,
                        log_end: high,
                    }
                    .emit(&self.metrics);
                }
            }
            // The new log grew past the offset held: where it should go on is still the
            // operator's call.
            Position::InLog if held.beyond_end_at == Some(stored) => {}
            Position::InLog => {
                self.resume(consumer, assignment, buffers, checks, partition, stored)?
            }
            Position::BelowStart => {
                let Some(db) = checks.db.as_ref() else {
                    return Ok(());
                };
                match offsets::skip_gap(db, &s.group, &s.topic, partition, stored, low).await {
                    Ok(true) => {
                        OffsetGapRecorded {
                            topic: &s.topic,
                            partition,
                            from_offset: stored,
                            to_offset: low,
                        }
                        .emit(&self.metrics);
                        self.resume(consumer, assignment, buffers, checks, partition, low)?;
                    }
                    // The stored offset moved meanwhile (replay, rebalance): read again.
                    Ok(false) => {}
                    Err(error) => {
                        warn!(%error, partition, "Failed to record a gap; trying again.");
                        checks.db = None;
                    }
                }
            }
        }
        Ok(())
    }

    /// End the hold of `partition`: fetch it again from `offset`.
    fn resume(
        &self,
        consumer: &SharedConsumer,
        assignment: &Assignment,
        buffers: &mut HashMap<i32, Buffer>,
        checks: &mut LogChecks,
        partition: i32,
        offset: i64,
    ) -> Result<(), SourceError> {
        let topic = &self.settings.topic;
        checks.held.remove(&partition);
        buffers.remove(&partition);
        let cursor = assignment.reset(partition, offset);
        checks.checked.insert(partition, (cursor.epoch, offset));
        consumer.seek(topic, partition, Offset::Offset(offset), SEEK_TIMEOUT)?;
        consumer.resume(&one_partition(topic, partition))?;
        checks.paused_here = true;
        info!(topic = %topic, partition, offset, "Held partition resumed.");
        Ok(())
    }
}

/// The stored offset of a held partition, on the source's own connection (opened on
/// first use, dropped by the caller after an error so the next look reconnects).
async fn held_stored_offset(
    checks: &mut LogChecks,
    s: &SourceSettings,
    partition: i32,
) -> Result<Option<i64>, storage::StorageError> {
    if checks.db.is_none() {
        checks.db = Some(storage::connect(&s.database_url).await?);
    }
    let Some(db) = checks.db.as_ref() else {
        return Ok(None);
    };
    let stored = offsets::stored(db, &s.group, &s.topic, Some(&[partition])).await?;
    Ok(stored.get(&partition).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_half_a_second_and_caps_at_thirty() {
        assert_eq!(BACKOFF.after(0), Duration::ZERO);
        assert_eq!(BACKOFF.after(1), Duration::from_millis(500));
        assert_eq!(BACKOFF.after(2), Duration::from_secs(1));
        assert_eq!(BACKOFF.after(4), Duration::from_secs(4));
        assert_eq!(BACKOFF.after(6), Duration::from_secs(16));
        assert_eq!(BACKOFF.after(7), Duration::from_secs(30));
        assert_eq!(BACKOFF.after(20), Duration::from_secs(30));
    }
}
