//! One memory setting, `--memory-mb`, divided into every bound of the daemon: the bytes
//! of batches in flight, librdkafka's prefetch queue, and the capacity of each cache
//! (subscribers, parsed numbers, bucket keys, record ids, settled customer months). Each
//! gets a fixed share of the budget, and its entries are counted from what one costs.
//!
//! What an entry costs is measured, not guessed: `cdrflow-bench memory` fills each
//! structure as the daemon does and prints the bytes it allocated per entry, and its
//! tests fail if one costs more than the figure here. A hash table grows by doubling, so
//! the figures are those of a table just past a doubling, the most it costs per entry.
//!
//! The rest of the budget, 27/64 of it, is what no setting sizes: the code, the
//! threads' stacks, the connection pools, librdkafka's own buffers, the buffers a
//! committer builds for the batch it writes (a `COPY` of its rows, the messages it
//! publishes), which come and go with each batch, and the allocator's pages that hold
//! a few live blocks among freed ones. The last three grow with the batches in flight,
//! which is why those get no more than 12/64.

/// Bytes one record in flight costs beyond its payload, at the stage where it is
/// largest (rated: the normalized event, its price and the parts of a call that crosses
/// a band, beside where it came from). Measured by `cdrflow-bench memory` on the
/// generator's stream with its default anomaly mix.
pub const RECORD_BYTES: usize = 1_200;

/// Bytes per cached subscriber: the MSISDN, the customer id, plan and activation day, in
/// the rater's hash table.
pub const SUBSCRIBER_BYTES: usize = 210;

/// Bytes per cached parsed number: 16 bytes of key and 16 of answer in the normalizer's
/// hash table.
pub const NUMBER_BYTES: usize = 80;

/// Bytes per remembered bucket key: an 8-byte fingerprint in a hash set and a queue.
pub const BUCKET_KEY_BYTES: usize = 32;

/// Bytes per remembered record id: a shared 36-character string in a hash set and a
/// queue.
pub const RECORD_ID_BYTES: usize = 128;

/// Bytes per settled customer month (every alert threshold raised) an accumulator
/// remembers: the key and when it was last seen, in a hash table.
pub const SETTLED_BYTES: usize = 80;

/// The smallest budget: below it the fixed part alone would not fit.
pub const MIN_MEGABYTES: u32 = 64;

/// The default budget.
pub const DEFAULT_MEGABYTES: u32 = 256;

/// Every bound of the daemon, from one budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    pub megabytes: u32,
    /// Bytes of batches in flight at most, each record counted as its payload plus
    /// [`RECORD_BYTES`]. One batch is always let through, whatever it weighs.
    pub inflight_bytes: usize,
    /// librdkafka's queue of prefetched records (`queued.max.messages.kbytes`).
    pub prefetch_kbytes: usize,
    /// Subscribers the rater keeps.
    pub subscribers: usize,
    /// Parsed numbers the normalizer keeps.
    pub numbers: usize,
    /// Bucket keys the committers remember, all together.
    pub bucket_keys: usize,
    /// Record ids each committer remembers.
    pub record_ids_per_committer: usize,
    /// Settled customer months each accumulator shard remembers.
    pub settled_per_shard: usize,
}

/// Each bound's share of the budget, in 64ths; the 27 left over are the fixed part.
const INFLIGHT: usize = 12;
const PREFETCH: usize = 4;
const SUBSCRIBERS: usize = 8;
const NUMBERS: usize = 5;
const BUCKET_KEYS: usize = 5;
const RECORD_IDS: usize = 2;
const SETTLED: usize = 1;
const FIXED: usize =
    64 - INFLIGHT - PREFETCH - SUBSCRIBERS - NUMBERS - BUCKET_KEYS - RECORD_IDS - SETTLED;

impl MemoryBudget {
    /// The bounds for `megabytes`, shared out over `committers` and `shards`.
    pub fn new(megabytes: u32, committers: usize, shards: usize) -> MemoryBudget {
        let total = megabytes as usize * 1024 * 1024;
        let share = |sixty_fourths: usize| total / 64 * sixty_fourths;
        MemoryBudget {
            megabytes,
            inflight_bytes: share(INFLIGHT),
            prefetch_kbytes: share(PREFETCH) / 1024,
            subscribers: share(SUBSCRIBERS) / SUBSCRIBER_BYTES,
            numbers: share(NUMBERS) / NUMBER_BYTES,
            bucket_keys: share(BUCKET_KEYS) / BUCKET_KEY_BYTES,
            record_ids_per_committer: share(RECORD_IDS) / RECORD_ID_BYTES / committers.max(1),
            settled_per_shard: share(SETTLED) / SETTLED_BYTES / shards.max(1),
        }
    }

    /// What is left for everything no bound sizes.
    pub fn fixed_bytes(&self) -> usize {
        self.megabytes as usize * 1024 * 1024 / 64 * FIXED
    }

    /// What a batch of records weighs against [`MemoryBudget::inflight_bytes`].
    pub fn weigh(records: usize, payload_bytes: usize) -> usize {
        records * RECORD_BYTES + payload_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shares_and_the_fixed_part_add_up_to_the_budget() {
        let b = MemoryBudget::new(256, 2, 2);
        let sized = b.inflight_bytes
            + b.prefetch_kbytes * 1024
            + b.subscribers * SUBSCRIBER_BYTES
            + b.numbers * NUMBER_BYTES
            + b.bucket_keys * BUCKET_KEY_BYTES
            + b.record_ids_per_committer * 2 * RECORD_ID_BYTES
            + b.settled_per_shard * 2 * SETTLED_BYTES;
        let total = 256 * 1024 * 1024;
        assert!(sized + b.fixed_bytes() <= total);
        // Rounding down each count loses less than an entry per bound.
        assert!(total - sized - b.fixed_bytes() < 7 * 1024);
        assert_eq!(b.fixed_bytes(), 108 * 1024 * 1024);
    }

    #[test]
    fn the_default_budget_holds_the_bench_backlog_s_customers_and_a_month_of_their_buckets() {
        let b = MemoryBudget::new(DEFAULT_MEGABYTES, 2, 2);
        assert_eq!(b.inflight_bytes, 48 * 1024 * 1024);
        assert_eq!(b.prefetch_kbytes, 16 * 1024);
        assert!(b.subscribers >= 150_000, "{b:?}");
        // A month of 100,000 customers writes about 600,000 bucket keys.
        assert!(b.bucket_keys >= 600_000, "{b:?}");
    }

    #[test]
    fn committers_and_shards_share_their_bound() {
        let one = MemoryBudget::new(512, 1, 1);
        let four = MemoryBudget::new(512, 4, 4);
        assert_eq!(
            four.record_ids_per_committer,
            one.record_ids_per_committer / 4
        );
        assert_eq!(four.settled_per_shard, one.settled_per_shard / 4);
        assert_eq!(four.inflight_bytes, one.inflight_bytes);
    }

    #[test]
    fn a_batch_weighs_its_payloads_and_a_fixed_cost_per_record() {
        assert_eq!(MemoryBudget::weigh(0, 0), 0);
        assert_eq!(MemoryBudget::weigh(10, 3_000), 10 * RECORD_BYTES + 3_000);
    }
}
