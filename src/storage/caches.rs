//! What the committers remember of what they stored, so that the common case needs no
//! lookup: the record ids committed lately (a duplicate of a recent record is known
//! without asking) and the bucket keys written lately (a batch's new buckets are copied
//! in instead of upserted). Both are bounded sets that forget their oldest entry first;
//! neither is ever the truth: an entry missing only costs a lookup or an upsert, and the
//! unique keys in Postgres decide.

use crate::domain::billing::BucketKey;
use chrono::NaiveDate;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex};

/// Record ids one committer remembers as committed: about 90 bytes each (a shared
/// string of a 36-character id, its slot in the hash set and in the queue), so about
/// 6 MB for 65,536.
pub const RECENTLY_STORED: usize = 65_536;

/// Bucket keys the committers remember as stored, shared by all of them: about 26 bytes
/// each (an 8-byte fingerprint in the hash set, with its control byte and spare
/// capacity, and in the queue), so about 27 MB for 1,048,576, worked out from the hash
/// set's and the queue's layouts. A month of 100,000 customers writes about 600,000 keys.
pub const KNOWN_BUCKETS: usize = 1 << 20;

/// A set of at most `capacity` entries that forgets the oldest first.
struct Bounded<T> {
    entries: foldhash::HashSet<T>,
    order: VecDeque<T>,
    capacity: usize,
}

impl<T: Hash + Eq + Clone> Bounded<T> {
    fn new(capacity: usize) -> Self {
        // Grown on use: a small daemon does not reserve the whole bound.
        let initial = capacity.min(1 << 16);
        Bounded {
            entries: foldhash::HashSet::with_capacity_and_hasher(initial, Default::default()),
            order: VecDeque::with_capacity(initial),
            capacity,
        }
    }

    fn contains<Q>(&self, entry: &Q) -> bool
    where
        T: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.contains(entry)
    }

    /// Add `entry` unless it is there; false if it was not (or cannot be kept).
    fn insert(&mut self, entry: T) -> bool {
        if self.capacity == 0 || self.entries.contains(&entry) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
        self.entries.insert(entry.clone());
        self.order.push_back(entry);
        true
    }
}

/// Record ids this process saw committed as usage lately, oldest forgotten first. Usage
/// rows are never deleted, so an id found here is stored: its record is a duplicate
/// without asking Postgres. An id not found here may still be stored; the insert finds
/// out. Duplicates on a network mostly repeat a record sent moments before (a
/// retransmission), which this catches.
pub struct RecentlyStored(Bounded<Arc<str>>);

impl RecentlyStored {
    pub fn new(capacity: usize) -> Self {
        RecentlyStored(Bounded::new(capacity))
    }

    pub fn contains(&self, record_id: &str) -> bool {
        self.0.contains(record_id)
    }

    /// Remember ids whose rows were committed (never before the commit succeeded).
    pub fn remember<'a>(&mut self, committed: impl IntoIterator<Item = &'a str>) {
        for id in committed {
            if !self.0.contains(id) {
                self.0.insert(Arc::from(id));
            }
        }
    }
}

/// Bucket keys this process wrote lately, shared by the committers, so that a batch's
/// new buckets can be copied in instead of upserted. A key is remembered as soon as a
/// transaction writes it, before it commits: a key remembered wrongly (its transaction
/// rolled back) is only upserted next time. What makes a copy fail is a key stored
/// without this process knowing it: after a start mid-month, or written by another
/// daemon or command. Then the copy is not tried again for a number of batches that
/// doubles with each failure (up to `MAX_COPY_BACKOFF`) and is reset by a copy that goes
/// through, which bounds the work lost to failed copies while the set fills up.
pub struct KnownBuckets {
    state: Mutex<Known>,
    /// A fast hash: these maps are looked up for every record.
    hasher: foldhash::fast::RandomState,
}

struct Known {
    keys: Bounded<u64>,
    /// Batches to pass before the next copy, and how many the last failure set.
    skip: u32,
    backoff: u32,
}

/// The longest pause, in batches, between two tries of the copy.
pub(super) const MAX_COPY_BACKOFF: u32 = 1024;

impl KnownBuckets {
    pub fn new(capacity: usize) -> Self {
        KnownBuckets {
            hasher: foldhash::fast::RandomState::default(),
            state: Mutex::new(Known {
                keys: Bounded::new(capacity),
                skip: 0,
                backoff: 0,
            }),
        }
    }

    /// A bucket's key as a number. Two keys with the same number make one of them look
    /// stored: it is upserted, which is always right.
    pub(super) fn fingerprint(&self, customer: i64, period: NaiveDate, k: &BucketKey) -> u64 {
        self.hasher.hash_one((customer, period, k))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Known> {
        // The state is a cache: one a panicking holder left is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether each key was known, in order; all of them are known afterwards.
    pub(super) fn learn(&self, keys: impl Iterator<Item = u64>) -> Vec<bool> {
        let mut s = self.state();
        keys.map(|key| {
            s.keys.contains(&key) || {
                s.keys.insert(key);
                false
            }
        })
        .collect()
    }

    /// Whether this batch may try the copy (not while paused after a failed one).
    pub(super) fn may_copy(&self) -> bool {
        let mut s = self.state();
        if s.skip > 0 {
            s.skip -= 1;
            return false;
        }
        true
    }

    /// What the copy came to: a failure pauses the copy, twice as long as the last time.
    pub(super) fn copy_done(&self, copied: bool) {
        let mut s = self.state();
        if copied {
            s.backoff = 0;
        } else {
            s.backoff = (s.backoff * 2).clamp(1, MAX_COPY_BACKOFF);
            s.skip = s.backoff;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recently_stored_forgets_the_oldest_beyond_its_capacity() {
        let mut recent = RecentlyStored::new(3);
        recent.remember(["a", "b", "c"]);
        assert!(["a", "b", "c"].iter().all(|id| recent.contains(id)));
        // Seen again: not a second entry, so it does not push another out.
        recent.remember(["b"]);
        assert!(recent.contains("a"));
        recent.remember(["d"]);
        assert!(!recent.contains("a"), "the oldest goes first");
        assert!(["b", "c", "d"].iter().all(|id| recent.contains(id)));
        assert!(!recent.contains("e"));
    }

    #[test]
    fn recently_stored_of_no_capacity_knows_nothing() {
        let mut recent = RecentlyStored::new(0);
        recent.remember(["a"]);
        assert!(!recent.contains("a"));
    }

    #[test]
    fn known_buckets_tell_what_was_seen_and_forget_the_oldest_beyond_capacity() {
        let known = KnownBuckets::new(3);
        assert_eq!(known.learn([1, 2, 1].into_iter()), [false, false, true]);
        assert_eq!(known.learn([3, 2].into_iter()), [false, true]);
        // A fourth key pushes out the first one learned.
        assert_eq!(known.learn([4].into_iter()), [false]);
        assert_eq!(known.learn([1, 3, 4].into_iter()), [false, true, true]);
        // Learning 1 again pushed out 2.
        assert_eq!(known.learn([2].into_iter()), [false]);
        let none = KnownBuckets::new(0);
        assert_eq!(none.learn([7, 7].into_iter()), [false, false]);
    }

    #[test]
    fn a_failed_copy_pauses_copies_for_twice_as_many_batches_each_time() {
        let known = KnownBuckets::new(8);
        assert!(known.may_copy());
        let paused = |known: &KnownBuckets| {
            let mut n = 0;
            while !known.may_copy() {
                n += 1;
            }
            n
        };
        known.copy_done(false);
        assert_eq!(paused(&known), 1);
        known.copy_done(false);
        assert_eq!(paused(&known), 2);
        known.copy_done(false);
        assert_eq!(paused(&known), 4);
        // A copy that goes through resets the pause.
        known.copy_done(true);
        assert!(known.may_copy());
        known.copy_done(false);
        assert_eq!(paused(&known), 1);
        for _ in 0..20 {
            known.copy_done(false);
        }
        assert_eq!(paused(&known), MAX_COPY_BACKOFF);
    }
}
