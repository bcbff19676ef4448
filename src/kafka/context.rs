//! The source consumer's rebalance handling. Assigned partitions are handed to librdkafka
//! only once the source loop has read their offsets stored in Postgres (our own state is
//! the truth), each from its stored offset; nothing here waits for Postgres, so the
//! polling thread keeps serving the group and a shutdown. On revocation the batches in
//! flight are given a moment to finish (none while shutting down), and whatever is still
//! buffered for a lost partition is dropped. The shared [`Assignment`] tells the source
//! loop which partitions it owns and from which offset each continues.

use crate::telemetry::events::ConsumerLagMeasured;
use crate::telemetry::Metrics;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Where the source stands on one owned partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Changes whenever the position is reset (assignment, fence, failure); batches of an
    /// older epoch no longer speak for this partition.
    pub epoch: u64,
    /// The offset the next batch continues from.
    pub next_from: i64,
}

/// Where a partition's next offset stands against the broker's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Between the log start and the log end (at the end: caught up).
    InLog,
    /// Past the log end: the topic was recreated or its log truncated. Consuming from
    /// anywhere would skip or double-bill; only the operator knows where to go on.
    BeyondEnd,
    /// Before the log start: the records in between were deleted unread.
    BelowStart,
}

/// Classify offset `next` against a partition's log start `low` and end `high`.
pub fn position(next: i64, low: i64, high: i64) -> Position {
    if next > high {
        Position::BeyondEnd
    } else if next < low {
        Position::BelowStart
    } else {
        Position::InLog
    }
}

/// Epochs are unique in the process, across restarts of the source: a committer that
/// sees a partition's epoch change knows its position was reset.
static EPOCHS: AtomicU64 = AtomicU64::new(0);

/// The partitions this instance owns and its position in each.
#[derive(Debug, Default)]
pub struct Assignment {
    cursors: Mutex<HashMap<i32, Cursor>>,
    /// Assigned partitions whose stored offset is not read yet, each with the rebalance
    /// that assigned it; not fetched until the source has read it.
    awaiting: Mutex<BTreeMap<i32, u64>>,
    /// Moves at every rebalance: librdkafka's pause state of the partitions changed.
    rebalances: AtomicU64,
}

impl Assignment {
    fn lock(&self) -> MutexGuard<'_, HashMap<i32, Cursor>> {
        // A poisoned lock means a panic elsewhere; the map itself is always consistent.
        self.cursors.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn awaiting_lock(&self) -> MutexGuard<'_, BTreeMap<i32, u64>> {
        self.awaiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `partitions` were assigned: owned once their stored offset is known.
    pub fn await_offsets(&self, partitions: &[i32]) {
        let rebalance = self.rebalances.fetch_add(1, Ordering::Relaxed) + 1;
        let mut awaiting = self.awaiting_lock();
        for p in partitions {
            self.lock().remove(p);
            awaiting.insert(*p, rebalance);
        }
    }

    /// The partitions waiting for their stored offset, with the rebalance of each.
    pub fn awaiting(&self) -> BTreeMap<i32, u64> {
        self.awaiting_lock().clone()
    }

    /// The stored offset of `partition`, as read for the assignment of `rebalance`: own it
    /// from there, unless it was revoked or assigned again since.
    pub fn offset_read(&self, partition: i32, rebalance: u64, offset: i64) -> Option<Cursor> {
        let mut awaiting = self.awaiting_lock();
        if awaiting.get(&partition) != Some(&rebalance) {
            return None;
        }
        awaiting.remove(&partition);
        Some(self.reset(partition, offset))
    }

    /// How many rebalances happened.
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::Relaxed)
    }

    /// Own `partition` from `offset` on, under a new epoch.
    pub fn reset(&self, partition: i32, offset: i64) -> Cursor {
        let cursor = Cursor {
            epoch: EPOCHS.fetch_add(1, Ordering::Relaxed) + 1,
            next_from: offset,
        };
        self.lock().insert(partition, cursor);
        cursor
    }

    pub fn revoke(&self, partition: i32) {
        self.lock().remove(&partition);
        self.awaiting_lock().remove(&partition);
        self.rebalances.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, partition: i32) -> Option<Cursor> {
        self.lock().get(&partition).copied()
    }

    /// Move the position of `partition` to `next_from` if it is still at `epoch`.
    pub fn advance(&self, partition: i32, epoch: u64, next_from: i64) -> bool {
        match self.lock().get_mut(&partition) {
            Some(c) if c.epoch == epoch => {
                c.next_from = next_from;
                true
            }
            _ => false,
        }
    }

    pub fn owned(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.lock().keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Owned partitions and those waiting for their offset.
    pub fn assigned(&self) -> Vec<i32> {
        let mut v = self.owned();
        v.extend(self.awaiting_lock().keys());
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Counts batches in flight so a revocation can wait for them. The count is dropped by
/// whichever thread finishes the batch, never by the (blocked) rebalancing thread.
#[derive(Debug, Default)]
pub struct InFlight {
    count: Mutex<usize>,
    idle: Condvar,
}

pub struct InFlightGuard(Arc<InFlight>);

impl std::fmt::Debug for InFlightGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InFlightGuard")
    }
}

impl InFlight {
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        InFlightGuard(self.clone())
    }

    pub fn current(&self) -> usize {
        *self.count.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait until nothing is in flight, at most `timeout`; true if it got there.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let guard = self.count.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .idle
            .wait_timeout_while(guard, timeout, |n| *n > 0)
            .unwrap_or_else(|p| p.into_inner());
        *guard == 0
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut n = self.0.count.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.0.idle.notify_all();
        }
    }
}

/// How long a revocation waits for in-flight batches before letting the partitions go:
/// enough for a batch to commit normally, short enough that neither the group's
/// rebalance nor a shutdown waits on a database that does not answer (the callback holds
/// the thread that polls). A late commit of the old owner is safe all the same: the offset
/// compare-and-set fences it, or fences the new owner's first batch.
const REVOKE_WAIT: Duration = Duration::from_secs(2);

pub struct SourceContext {
    pub assignment: Arc<Assignment>,
    pub inflight: Arc<InFlight>,
    pub metrics: Metrics,
    /// Set once the source is shutting down: the consumer's close revokes the partitions,
    /// and the batches still in flight then are not waited for.
    pub stopping: Arc<AtomicBool>,
}

impl ClientContext for SourceContext {
    /// librdkafka's statistics (every `statistics.interval.ms`): the lag of each owned
    /// partition, from the broker's high watermark and the group's committed offset (the
    /// mirror of the offset committed in Postgres).
    fn stats(&self, statistics: Statistics) {
        let owned = self.assignment.owned();
        let mut lag = Vec::new();
        for topic in statistics.topics.values() {
            for p in topic.partitions.values() {
                if !owned.contains(&p.partition) {
                    continue;
                }
                let behind = if p.consumer_lag >= 0 {
                    p.consumer_lag
                } else if p.hi_offset >= 0 && p.app_offset >= 0 {
                    // Nothing committed yet: how far the fetch position is behind.
                    (p.hi_offset - p.app_offset).max(0)
                } else {
                    continue;
                };
                lag.push((p.partition, behind));
            }
        }
        lag.sort_unstable();
        ConsumerLagMeasured { partitions: &lag }.emit(&self.metrics);
    }
}

impl ConsumerContext for SourceContext {
    fn rebalance(
        &self,
        base_consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // The assignment is applied later, by the source loop, once it has read
                // the stored offsets: not here on the polling thread, which must stay
                // free to serve the group and a shutdown whatever Postgres does.
                // librdkafka waits for that call; the group goes on meanwhile.
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                if partitions.is_empty() {
                    if let Err(error) = base_consumer.assign(tpl) {
                        warn!(%error, "Failed to apply the assignment.");
                    }
                    return;
                }
                self.assignment.await_offsets(&partitions);
                info!(
                    ?partitions,
                    "Partitions assigned; reading their stored offsets."
                );
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                for e in tpl.elements() {
                    self.assignment.revoke(e.partition());
                }
                let started = Instant::now();
                let drained = if self.stopping.load(Ordering::Relaxed) {
                    self.inflight.current() == 0
                } else {
                    self.inflight.wait_idle(REVOKE_WAIT)
                };
                info!(
                    partitions = ?tpl.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(),
                    drained,
                    waited_ms = started.elapsed().as_millis() as u64,
                    "Partitions revoked."
                );
                if let Err(error) = base_consumer.unassign() {
                    warn!(%error, "Failed to drop the assignment.");
                }
            }
            other => {
                warn!(error = ?other, "Rebalance error; dropping the assignment.");
                for p in self.assignment.assigned() {
                    self.assignment.revoke(p);
                }
                let _ = base_consumer.unassign();
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            // Kafka's committed offsets are only a mirror for lag tools.
            tracing::debug!(%error, "Failed to mirror offsets to Kafka.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_is_in_the_log_from_its_start_up_to_its_end_inclusive() {
        assert_eq!(position(10, 10, 20), Position::InLog);
        assert_eq!(position(20, 10, 20), Position::InLog);
        assert_eq!(position(0, 0, 0), Position::InLog);
        assert_eq!(position(21, 10, 20), Position::BeyondEnd);
        assert_eq!(position(1000, 0, 600), Position::BeyondEnd);
        assert_eq!(position(9, 10, 20), Position::BelowStart);
        // Everything deleted: start and end meet past the stored offset.
        assert_eq!(position(5, 30, 30), Position::BelowStart);
    }

    #[test]
    fn a_reset_starts_a_new_epoch_and_stale_advances_are_ignored() {
        let a = Assignment::default();
        let first = a.reset(0, 10);
        assert!(a.advance(0, first.epoch, 20));
        let second = a.reset(0, 15);
        assert_ne!(first.epoch, second.epoch);
        assert!(!a.advance(0, first.epoch, 99));
        assert_eq!(a.get(0).unwrap().next_from, 15);
        a.revoke(0);
        assert_eq!(a.get(0), None);
    }

    #[test]
    fn waiting_for_in_flight_batches_returns_once_the_last_guard_drops() {
        let inflight = Arc::new(InFlight::default());
        let g = inflight.enter();
        assert!(!inflight.wait_idle(Duration::from_millis(20)));
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(g);
        });
        assert!(inflight.wait_idle(Duration::from_secs(5)));
        t.join().unwrap();
        assert_eq!(inflight.current(), 0);
    }
}
