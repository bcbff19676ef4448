//! What the daemon remembers of Postgres, so that the common case needs no lookup: the
//! subscribers the rater found, the record ids committed lately (a duplicate of a recent
//! record is known without asking) and the bucket keys written lately (a batch's new
//! buckets are copied in instead of upserted). Each is bounded by a capacity that
//! `pipeline::memory` sizes from the daemon's memory budget; none is ever the truth: an
//! entry missing only costs a lookup or an upsert, and the unique keys in Postgres decide.

use crate::domain::batch::Subscriber;
use crate::domain::billing::BucketKey;
use chrono::NaiveDate;
use foldhash::{HashMap, HashMapExt};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex};

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

    fn len(&self) -> usize {
        self.order.len()
    }

    fn pop_oldest(&mut self) {
        if let Some(old) = self.order.pop_front() {
            self.entries.remove(&old);
        }
    }

    /// Add `entry` unless it is there; false if it was not (or cannot be kept).
    fn insert(&mut self, entry: T) -> bool {
        if self.capacity == 0 || self.entries.contains(&entry) {
            return false;
        }
        if self.order.len() == self.capacity {
            self.pop_oldest();
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

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
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
///
/// Keys are kept by period: once full, the oldest key of the oldest period goes first,
/// and a period's keys are dropped at once when it is closed (no usage enters its
/// buckets any more).
pub struct KnownBuckets {
    state: Mutex<Known>,
    /// A fast hash: these maps are looked up for every record.
    hasher: foldhash::fast::RandomState,
}

struct Known {
    periods: BTreeMap<NaiveDate, Bounded<u64>>,
    /// Keys held over all periods, and at most.
    len: usize,
    capacity: usize,
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
                periods: BTreeMap::new(),
                len: 0,
                capacity,
                skip: 0,
                backoff: 0,
            }),
        }
    }

    /// A bucket's key as a number. Two keys with the same number make one of them look
    /// stored: it is upserted, which is always right.
    pub fn fingerprint(&self, customer: i64, k: &BucketKey) -> u64 {
        self.hasher.hash_one((customer, k))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Known> {
        // The state is a cache: one a panicking holder left is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether each key (period, fingerprint) was known, in order; all of them are known
    /// afterwards, as far as the capacity allows.
    pub fn learn(&self, keys: impl Iterator<Item = (NaiveDate, u64)>) -> Vec<bool> {
        let mut s = self.state();
        keys.map(|(period, key)| s.learn(period, key)).collect()
    }

    /// Forget the keys of these periods (they are closed).
    pub fn forget(&self, periods: &BTreeSet<NaiveDate>) {
        let mut s = self.state();
        for p in periods {
            if let Some(keys) = s.periods.remove(p) {
                s.len -= keys.len();
            }
        }
    }

    /// Keys held, over all periods.
    pub fn len(&self) -> usize {
        self.state().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The periods whose keys are held.
    pub fn periods(&self) -> Vec<NaiveDate> {
        self.state().periods.keys().copied().collect()
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

impl Known {
    fn learn(&mut self, period: NaiveDate, key: u64) -> bool {
        if self.capacity == 0 {
            return false;
        }
        if self
            .periods
            .get(&period)
            .is_some_and(|keys| keys.contains(&key))
        {
            return true;
        }
        if self.len == self.capacity {
            // The oldest key of the oldest period makes room.
            if let Some(mut oldest) = self.periods.first_entry() {
                oldest.get_mut().pop_oldest();
                if oldest.get().len() == 0 {
                    oldest.remove();
                }
                self.len -= 1;
            }
        }
        // Each period's set is bounded by the whole capacity; the count above keeps
        // their sum within it.
        let capacity = self.capacity;
        self.periods
            .entry(period)
            .or_insert_with(|| Bounded::new(capacity))
            .insert(key);
        self.len += 1;
        false
    }
}

/// Subscribers the rater found since customers last changed, at most `capacity`; beyond
/// it the cache starts over. Unknown MSISDNs are never kept: their records go to
/// suspense, which is resolved by its own pass once the customer exists.
pub struct Subscribers {
    found: HashMap<String, Subscriber>,
    capacity: usize,
    /// The customer change counter as last read; None before the first read or after a
    /// failed one, when nothing is kept.
    changes: Option<i64>,
    /// Moves whenever the cache starts over: a lookup begun before that may have read
    /// customers as they were before the change, and is used for its batch only.
    generation: u64,
}

impl Subscribers {
    pub fn new(capacity: usize) -> Self {
        Subscribers {
            found: HashMap::new(),
            capacity,
            changes: None,
            generation: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn len(&self) -> usize {
        self.found.len()
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The MSISDNs of `msisdns` not known, in their order: to look up.
    pub fn missing(&self, msisdns: Vec<&str>) -> Vec<String> {
        msisdns
            .into_iter()
            .filter(|m| !self.found.contains_key(*m))
            .map(str::to_string)
            .collect()
    }

    /// The MSISDNs of `msisdns` neither known here nor in `found` and not in `asked`
    /// (sorted): what a batch looks up again because the cache started over (full, or
    /// customers changed) after the batch took its [`Subscribers::missing`].
    pub fn lost(
        &self,
        msisdns: Vec<&str>,
        found: &HashMap<String, Subscriber>,
        asked: &[String],
    ) -> Vec<String> {
        msisdns
            .into_iter()
            .filter(|m| !self.found.contains_key(*m) && !found.contains_key(*m))
            .filter(|m| asked.binary_search_by(|a| a.as_str().cmp(m)).is_err())
            .map(str::to_string)
            .collect()
    }

    /// Keep what a lookup begun at `generation` found, unless the cache started over
    /// since then or the change counter is not known. What does not fit is not kept.
    pub fn keep(&mut self, found: HashMap<String, Subscriber>, generation: u64) {
        if generation != self.generation || self.changes.is_none() {
            return;
        }
        if self.found.len() + found.len() > self.capacity {
            self.found.clear();
        }
        let room = self.capacity - self.found.len();
        self.found.extend(found.into_iter().take(room));
    }

    /// The counter as read now (None: it could not be read): starts over if it moved.
    /// True if it was not known before (at start, or after a failed read).
    pub fn changes_read(&mut self, changes: Option<i64>) -> bool {
        if changes.is_none() || changes != self.changes {
            self.found.clear();
            self.generation += 1;
        }
        std::mem::replace(&mut self.changes, changes).is_none()
    }

    pub fn get(&self, msisdn: &str) -> Option<&Subscriber> {
        self.found.get(msisdn)
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

    fn day(month: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, month, 1).unwrap()
    }

    /// Keys of one period.
    fn of(month: u32, keys: &[u64]) -> Vec<(NaiveDate, u64)> {
        keys.iter().map(|k| (day(month), *k)).collect()
    }

    #[test]
    fn known_buckets_tell_what_was_seen_and_forget_the_oldest_beyond_capacity() {
        let known = KnownBuckets::new(3);
        assert_eq!(
            known.learn(of(9, &[1, 2, 1]).into_iter()),
            [false, false, true]
        );
        assert_eq!(known.learn(of(9, &[3, 2]).into_iter()), [false, true]);
        // A fourth key pushes out the first one learned.
        assert_eq!(known.learn(of(9, &[4]).into_iter()), [false]);
        assert_eq!(
            known.learn(of(9, &[1, 3, 4]).into_iter()),
            [false, true, true]
        );
        // Learning 1 again pushed out 2.
        assert_eq!(known.learn(of(9, &[2]).into_iter()), [false]);
        let none = KnownBuckets::new(0);
        assert_eq!(none.learn(of(9, &[7, 7]).into_iter()), [false, false]);
    }

    #[test]
    fn known_buckets_make_room_from_the_oldest_period_and_drop_a_closed_one_whole() {
        let known = KnownBuckets::new(4);
        known.learn(of(10, &[1, 2]).into_iter());
        known.learn(of(9, &[1, 2]).into_iter());
        // The same fingerprint in another period is another key.
        assert_eq!(known.learn(of(11, &[1]).into_iter()), [false]);
        // September, the oldest period, gave its first key; October kept both.
        assert_eq!(known.learn(of(10, &[1, 2]).into_iter()), [true, true]);
        assert_eq!(known.learn(of(9, &[2]).into_iter()), [true]);
        assert_eq!(known.periods(), [day(9), day(10), day(11)]);
        known.forget(&[day(9), day(10)].into());
        assert_eq!(known.periods(), [day(11)]);
        assert_eq!(known.learn(of(10, &[1]).into_iter()), [false]);
        // Forgetting freed room: four keys fit without pushing November's out.
        known.learn(of(12, &[1, 2]).into_iter());
        assert_eq!(known.learn(of(11, &[1]).into_iter()), [true]);
    }

    fn sub(customer_id: i64, plan: &str) -> Subscriber {
        Subscriber {
            customer_id,
            plan: plan.into(),
            activated_on: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        }
    }

    fn found(pairs: &[(&str, i64, &str)]) -> HashMap<String, Subscriber> {
        pairs
            .iter()
            .map(|(m, id, plan)| (m.to_string(), sub(*id, plan)))
            .collect()
    }

    #[test]
    fn the_subscriber_cache_keeps_what_fits_and_starts_over_when_full() {
        let mut cache = Subscribers::new(2);
        cache.changes_read(Some(1));
        cache.keep(found(&[("+212600000001", 1, "basic")]), cache.generation());
        cache.keep(found(&[("+212600000002", 2, "basic")]), cache.generation());
        assert_eq!(cache.len(), 2);
        // A third does not fit: the cache starts over with it.
        cache.keep(found(&[("+212600000003", 3, "basic")]), cache.generation());
        assert_eq!(cache.len(), 1);
        assert!(cache.get("+212600000003").is_some());
        // A lookup larger than the whole cache keeps what fits.
        cache.keep(
            found(&[
                ("+212600000004", 4, "basic"),
                ("+212600000005", 5, "basic"),
                ("+212600000006", 6, "basic"),
            ]),
            cache.generation(),
        );
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_batch_looks_up_again_what_the_cache_lost_after_it_asked() {
        let mut cache = Subscribers::new(2);
        cache.changes_read(Some(1));
        cache.keep(
            found(&[("+212600000001", 1, "basic"), ("+212600000002", 2, "basic")]),
            cache.generation(),
        );
        let batch = vec!["+212600000001", "+212600000002", "+212600000003"];
        let asked = cache.missing(batch.clone());
        assert_eq!(asked, vec!["+212600000003".to_string()]);
        // Nothing lost yet; an MSISDN asked and not found stays unknown, not asked again.
        assert!(cache
            .lost(batch.clone(), &HashMap::new(), &asked)
            .is_empty());
        // The batch before this one fills the cache: it starts over.
        cache.keep(found(&[("+212600000009", 9, "basic")]), cache.generation());
        assert_eq!(
            cache.lost(batch.clone(), &HashMap::new(), &asked),
            vec!["+212600000001".to_string(), "+212600000002".to_string()]
        );
        // What this batch's own lookups found is not lost.
        let mine = found(&[("+212600000002", 2, "basic")]);
        assert_eq!(
            cache.lost(batch, &mine, &asked),
            vec!["+212600000001".to_string()]
        );
    }

    #[test]
    fn the_subscriber_cache_keeps_subscribers_until_customers_change() {
        let mut cache = Subscribers::new(100);
        cache.changes_read(Some(7));
        cache.keep(found(&[("+212600000001", 1, "basic")]), cache.generation());
        assert_eq!(cache.get("+212600000001"), Some(&sub(1, "basic")));
        assert_eq!(
            cache.missing(vec!["+212600000001", "+212600000002"]),
            vec!["+212600000002".to_string()]
        );

        // The same counter: nothing changed, the entry stays (and it was known: no
        // reading every customer again).
        assert!(!cache.changes_read(Some(7)));
        assert_eq!(cache.get("+212600000001"), Some(&sub(1, "basic")));

        // The counter moved: everything is looked up again.
        cache.changes_read(Some(8));
        assert_eq!(cache.get("+212600000001"), None);
        assert_eq!(cache.missing(vec!["+212600000001"]).len(), 1);
    }

    #[test]
    fn a_subscriber_lookup_begun_before_a_change_is_not_kept() {
        let mut cache = Subscribers::new(100);
        cache.changes_read(Some(1));
        let begun = cache.generation();
        // A change commits and is seen while the lookup is on its way.
        cache.changes_read(Some(2));
        cache.keep(found(&[("+212600000001", 1, "basic")]), begun);
        assert_eq!(cache.get("+212600000001"), None);
        // A lookup begun after it is kept.
        cache.keep(
            found(&[("+212600000001", 1, "student")]),
            cache.generation(),
        );
        assert_eq!(cache.get("+212600000001"), Some(&sub(1, "student")));
    }

    #[test]
    fn no_subscriber_is_kept_while_the_change_counter_is_unknown() {
        let mut cache = Subscribers::new(100);
        // Before the first read.
        cache.keep(found(&[("+212600000001", 1, "basic")]), cache.generation());
        assert_eq!(cache.get("+212600000001"), None);
        assert!(
            cache.changes_read(Some(3)),
            "the first read: every customer is read"
        );
        cache.keep(found(&[("+212600000001", 1, "basic")]), cache.generation());
        assert!(cache.get("+212600000001").is_some());
        // A failed read empties the cache and keeps nothing until a read succeeds.
        cache.changes_read(None);
        assert_eq!(cache.get("+212600000001"), None);
        cache.keep(found(&[("+212600000001", 1, "basic")]), cache.generation());
        assert_eq!(cache.get("+212600000001"), None);
        assert!(cache.changes_read(Some(3)), "read again after a failure");
        cache.keep(found(&[("+212600000001", 1, "basic")]), cache.generation());
        assert!(cache.get("+212600000001").is_some());
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
