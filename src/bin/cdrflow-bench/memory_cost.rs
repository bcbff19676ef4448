//! What one entry of each bounded structure of the daemon costs, measured: the structure
//! is filled on a thread of its own, as the daemon fills it, under an allocator that
//! counts what each thread holds (mimalloc's usable size of each block, so its size
//! classes count). `pipeline::memory` sizes the structures with figures at least these;
//! the tests below fail if one is not.

use cdrflow::domain::batch::{rate_record, ProcessedRecord, SourceMeta, Subscriber, Verdict};
use cdrflow::domain::catalog::Catalog;
use cdrflow::domain::msisdn::CachedNumberPlan;
use cdrflow::domain::{Normalizer, NumberPlan, Validation};
use cdrflow::generator::{AnomalyRates, Generator, GeneratorConfig};
use cdrflow::pipeline::accumulator::Settled;
use cdrflow::pipeline::memory;
use cdrflow::storage::caches::{KnownBuckets, RecentlyStored, Subscribers};
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::time::Instant;

/// mimalloc, counting per thread the bytes of the blocks it hands out.
pub struct Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn count(delta: i64) {
    // During a thread's teardown the counter may be gone: nothing is measured then.
    let _ = LIVE.try_with(|live| live.set(live.get() + delta));
}

fn usable(p: *mut u8) -> i64 {
    // SAFETY: `p` is a live block mimalloc handed out.
    unsafe { libmimalloc_sys::mi_usable_size(p as *const c_void) as i64 }
}

// SAFETY: every call goes to mimalloc as it is; only the count is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = mimalloc::MiMalloc.alloc(layout);
        if !p.is_null() {
            count(usable(p));
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = mimalloc::MiMalloc.alloc_zeroed(layout);
        if !p.is_null() {
            count(usable(p));
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        count(-usable(p));
        mimalloc::MiMalloc.dealloc(p, layout)
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let before = usable(p);
        let q = mimalloc::MiMalloc.realloc(p, layout, new_size);
        if !q.is_null() {
            count(usable(q) - before);
        }
        q
    }
}

fn live() -> i64 {
    LIVE.with(Cell::get)
}

/// Entries just past a doubling of a hash table (7/8 of 2^18 slots, plus one): the most
/// each entry costs, since the table has just grown to twice the slots.
const JUST_PAST_A_DOUBLING: usize = 7 << 15 | 1;

/// What one entry of a structure costs, in bytes, and the figure the budget uses.
pub struct Cost {
    pub name: &'static str,
    pub per_entry: f64,
    pub budgeted: usize,
}

/// Bytes held per entry after `fill` ran with `n`, on a thread of its own (so that
/// nothing else it allocates is counted); `fill` returns what it built, which is
/// measured while still held.
fn per_entry<T>(n: usize, fill: impl FnOnce(usize) -> T + Send + 'static) -> f64 {
    std::thread::spawn(move || {
        let before = live();
        let built = fill(n);
        let held = live() - before;
        drop(built);
        held as f64 / n as f64
    })
    .join()
    .expect("the measuring thread panicked")
}

fn msisdn(i: usize) -> String {
    format!("+2126{:08}", i % 100_000_000)
}

fn record_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn period() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 9, 1).expect("a day")
}

/// The plan codes of the shipped catalog, as the subscribers carry them.
const PLANS: [&str; 4] = ["basic", "student", "business", "data-max"];

fn subscribers(n: usize) -> Subscribers {
    let mut cache = Subscribers::new(n);
    cache.changes_read(Some(1));
    let found: foldhash::HashMap<String, Subscriber> = (0..n)
        .map(|i| {
            (
                msisdn(i),
                Subscriber {
                    customer_id: i as i64,
                    plan: PLANS[i % PLANS.len()].to_string(),
                    activated_on: period(),
                },
            )
        })
        .collect();
    cache.keep(found, cache.generation());
    assert_eq!(cache.len(), n);
    cache
}

fn numbers(n: usize) -> CachedNumberPlan {
    let mut cache = CachedNumberPlan::with_capacity(NumberPlan::new("MA").expect("MA"), n);
    for i in 0..n {
        let _ = cache.parse_peer(&msisdn(i));
    }
    assert_eq!(cache.len(), n);
    cache
}

fn bucket_keys(n: usize) -> KnownBuckets {
    let known = KnownBuckets::new(n);
    known.learn((0..n as u64).map(|k| (period(), k)));
    known
}

fn record_ids(n: usize) -> RecentlyStored {
    let mut recent = RecentlyStored::new(n);
    for i in 0..n {
        recent.remember([record_id(i).as_str()]);
    }
    recent
}

fn settled(n: usize) -> Settled {
    let mut settled = Settled::new(n, std::time::Duration::from_secs(3600));
    let now = Instant::now();
    let keys: Vec<(i64, NaiveDate)> = (0..n as i64).map(|c| (c, period())).collect();
    settled.add(&keys, now);
    settled
}

/// Bytes per record of a batch in flight beyond its payload, at the stage where the
/// batch is largest, over a generated stream with the default anomaly mix; the records
/// are read, validated, normalized and rated as the pipeline's stages do, in batches of
/// the default size.
fn record_in_flight() -> f64 {
    std::thread::spawn(|| {
        let batch = 5000;
        let customers = 1000;
        let start = Utc
            .with_ymd_and_hms(2026, 9, 1, 0, 0, 0)
            .single()
            .expect("a time");
        let generator = Generator::new(GeneratorConfig {
            seed: 1,
            count: batch as u64,
            customers,
            start,
            span: Duration::days(30),
            timezone: chrono_tz::Africa::Casablanca,
            now: Utc::now(),
            rates: AnomalyRates::default(),
        })
        .expect("a generator");
        let known: HashMap<String, Subscriber> = generator
            .customers()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    c.msisdn.clone(),
                    Subscriber {
                        customer_id: i as i64,
                        plan: c.plan.clone(),
                        activated_on: c.activated_on,
                    },
                )
            })
            .collect();
        let catalog = Catalog::parse(super::DEFAULT_CATALOG).expect("the catalog");
        let validation = Validation {
            max_event_age: chrono::Duration::days(36_500),
            ..Validation::default()
        };
        let mut normalizer = Normalizer::new(NumberPlan::new("MA").expect("MA"));
        let produced: Vec<(Vec<u8>, Vec<u8>)> =
            generator.map(|r| (r.key.into_bytes(), r.payload)).collect();
        // The number cache is the normalizer's, counted apart: warm it up first.
        let now = Utc::now();
        for (_, payload) in &produced {
            if let Ok(v) = validation.validate(payload, now) {
                let _ = normalizer.normalize(v);
            }
        }

        let before = live();
        // As the source reads them: a buffer with room for the whole batch.
        let mut records: Vec<ProcessedRecord> = Vec::with_capacity(batch);
        let mut payloads = 0usize;
        for (offset, (key, payload)) in produced.iter().enumerate() {
            payloads += payload.len();
            records.push(ProcessedRecord {
                source: SourceMeta {
                    offset: offset as i64,
                    key: Some(key.clone()),
                    payload: payload.clone(),
                    timestamp: Some(now),
                },
                verdict: Verdict::Received,
            });
        }
        let mut largest = live() - before;
        for r in records.iter_mut() {
            r.verdict = match validation.validate(&r.source.payload, now) {
                Ok(cdr) => Verdict::Valid(cdr),
                Err(rejection) => Verdict::Rejected(rejection),
            };
        }
        largest = largest.max(live() - before);
        for r in records.iter_mut() {
            r.normalize(&mut normalizer);
        }
        largest = largest.max(live() - before);
        for r in records.iter_mut() {
            r.verdict = match std::mem::replace(&mut r.verdict, Verdict::Received) {
                Verdict::Normalized(n) => {
                    let sub = known.get(n.subscriber.as_str());
                    rate_record(&catalog, 1, sub, n)
                }
                decided => decided,
            };
        }
        largest = largest.max(live() - before);
        let n = records.len();
        drop(records);
        (largest - payloads as i64) as f64 / n as f64
    })
    .join()
    .expect("the measuring thread panicked")
}

/// Every structure's cost per entry.
pub fn measure() -> Vec<Cost> {
    let n = JUST_PAST_A_DOUBLING;
    vec![
        Cost {
            name: "record in flight (beyond its payload)",
            per_entry: record_in_flight(),
            budgeted: memory::RECORD_BYTES,
        },
        Cost {
            name: "subscriber",
            per_entry: per_entry(n, subscribers),
            budgeted: memory::SUBSCRIBER_BYTES,
        },
        Cost {
            name: "parsed number",
            per_entry: per_entry(n, numbers),
            budgeted: memory::NUMBER_BYTES,
        },
        Cost {
            name: "bucket key",
            per_entry: per_entry(n, bucket_keys),
            budgeted: memory::BUCKET_KEY_BYTES,
        },
        Cost {
            name: "record id",
            per_entry: per_entry(n, record_ids),
            budgeted: memory::RECORD_ID_BYTES,
        },
        Cost {
            name: "settled customer month",
            per_entry: per_entry(n, settled),
            budgeted: memory::SETTLED_BYTES,
        },
    ]
}

pub fn print() -> anyhow::Result<()> {
    println!("{:<40} {:>12} {:>10}", "entry", "measured B", "budget B");
    for c in measure() {
        println!("{:<40} {:>12.1} {:>10}", c.name, c.per_entry, c.budgeted);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_budget_counts_at_least_what_each_entry_costs() {
        for c in measure() {
            assert!(
                c.per_entry <= c.budgeted as f64,
                "{} costs {:.1} bytes, budgeted {}",
                c.name,
                c.per_entry,
                c.budgeted
            );
            // A figure far above the cost wastes the budget: entries that would fit are
            // not kept.
            assert!(
                c.per_entry >= c.budgeted as f64 * 0.6,
                "{} costs {:.1} bytes, budgeted {}: lower the figure",
                c.name,
                c.per_entry,
                c.budgeted
            );
        }
    }

    #[test]
    fn the_counter_sees_what_a_thread_holds() {
        let held = per_entry(1000, |n| vec![0u64; n]);
        assert!((8.0..8.5).contains(&held), "{held}");
        let nothing = per_entry(1000, |n| {
            let v = vec![0u8; n];
            drop(v);
        });
        assert_eq!(nothing, 0.0);
    }
}
