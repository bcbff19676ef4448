//! The BillingAccumulators: the credit-limit checks, sharded by customer id.
//!
//! Postgres is the truth. Every transaction that changes a customer's buckets or what
//! closed periods owe them marks a check due for that (customer, period) in
//! `alert_checks`, in the same transaction (`storage::billing::mark_checks`). A check is
//! decided from what Postgres holds when it is evaluated, never from deltas added to a
//! remembered total: with several instances in a group, partitions move between them and
//! a total one instance remembers misses what the others added. So the set of alerts is
//! a function of the committed state, whatever the number of instances, rebalances,
//! kills and arrival order.
//!
//! Who evaluates: after each commit, the shard of each customer it touched (the
//! hand-over); the shard of the customers a suspense resolution or a re-rating touched
//! (`Refresh`); and every few seconds each shard of every instance sweeps the checks of
//! its slice (`customer_id mod shards`) left due for a while, which catches those of an
//! instance killed after its commit and of evaluations that failed. Two evaluators of one
//! check are harmless: the unique key on (customer, period, threshold) stores an alert
//! once, and only what was stored is published.
//!
//! How: a cheap upper bound of the estimate (the gross of the buckets plus the most that
//! closed periods may add, with fees and VAT) first; only a customer it cannot place
//! below their lowest threshold not raised yet is estimated exactly, from their buckets,
//! by the billing code of `cdrflow bill`. Then the check is cleared, only if no commit
//! has marked it again since it was read, so a concurrent commit's check stays due.
//!
//! Alerts are never withdrawn: usage lowered by a re-rating leaves a raised alert raised.
//! That is also what makes the one piece of memory here safe: a customer period with
//! every threshold raised cannot raise anything more, so its checks are cleared without
//! reading it.

use super::faults;
use super::supervision::{catch_future, Supervision};
use crate::domain::billing::{self, Usage};
use crate::storage::billing::{self as store, Alert, CustomerUsage, PendingCheck};
use crate::storage::caches::KnownBuckets;
use crate::storage::catalog::Version;
use crate::storage::invoices;
use crate::storage::{self, StorageError};
use crate::telemetry::events::{AlertRaised, DatabaseFailed};
use crate::telemetry::metrics::{Cache, CacheGauge, StageMetrics};
use crate::telemetry::Metrics;
use actix::prelude::*;
use chrono::{Datelike, NaiveDate, Utc};
use deadpool_postgres::Pool;
use foldhash::{HashMap, HashMapExt};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::warn;

/// New usage for customers of one shard, after its transaction committed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UsagePosted(pub Vec<CustomerUsage>);

/// These customers' buckets changed outside the batch path (suspense resolution,
/// re-rating): evaluate their checks.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Refresh(pub Vec<i64>);

/// Answered once every message before it is handled (at shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Evaluate the next page of this shard's checks left due.
#[derive(Message)]
#[rtype(result = "()")]
struct Sweep {
    after: (i64, NaiveDate),
}

/// A sweep from the first key: every customer id is above `i64::MIN`.
fn sweep_from_start() -> Sweep {
    Sweep {
        after: (i64::MIN, NaiveDate::default()),
    }
}

/// Checks evaluated per sweep step.
const SWEEP_PAGE: i64 = 2000;

/// How often each shard sweeps.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// A check younger than this is left to its hand-over, which normally clears it within
/// moments; the sweep is for those nobody else will evaluate.
const SWEEP_MIN_AGE: Duration = Duration::from_secs(5);

/// How often each shard forgets idle settled customer months, and the month-to-date
/// state of periods closed since.
const FORGET_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct AccumulatorSettings {
    /// Customer periods with every threshold raised remembered per shard; the least
    /// recently seen go first beyond it.
    pub max_customers: usize,
    /// A settled customer period not seen for this long is forgotten.
    pub idle: Duration,
    /// Where alerts are published (None: stored only).
    pub alerts_topic: Option<String>,
    /// This shard's number and the number of shards: its slice of the sweep.
    pub shard: (usize, usize),
}

pub struct Accumulator {
    pool: Pool,
    catalog: Arc<Version>,
    settings: AccumulatorSettings,
    producer: FutureProducer,
    metrics: Metrics,
    stage: StageMetrics,
    settled: Settled,
    settled_entries: CacheGauge,
    /// The bucket keys the committers remember: shard 0 drops those of closed periods
    /// and reports how many there are.
    known: Arc<KnownBuckets>,
    known_entries: Option<CacheGauge>,
    /// A sweep is going through its pages: the timer does not start another.
    sweeping: bool,
    supervision: Supervision,
}

impl Accumulator {
    pub fn new(
        pool: Pool,
        catalog: Arc<Version>,
        settings: AccumulatorSettings,
        producer: FutureProducer,
        metrics: Metrics,
        known: Arc<KnownBuckets>,
        supervision: Supervision,
    ) -> Self {
        Accumulator {
            pool,
            catalog,
            settled: Settled::new(settings.max_customers, settings.idle),
            settled_entries: metrics.cache(Cache::SettledMonths),
            known_entries: (settings.shard.0 == 0).then(|| metrics.cache(Cache::BucketKeys)),
            settings,
            producer,
            stage: metrics.stage("accumulator"),
            metrics,
            known,
            sweeping: false,
            supervision,
        }
    }

    /// Forget idle settled customer months, and whatever is remembered of the periods
    /// closed since (no usage enters their buckets any more).
    fn forget(&mut self, ctx: &mut Context<Self>) {
        self.settled.evict();
        self.report_entries();
        let mut periods = self.settled.periods();
        if self.settings.shard.0 == 0 {
            periods.extend(self.known.periods());
        }
        // Only a period before the current month can be closed.
        let this_month = Utc::now().date_naive().with_day(1).unwrap_or_default();
        periods.retain(|p| *p < this_month);
        if periods.is_empty() {
            return;
        }
        let (pool, me) = (self.pool.clone(), ctx.address());
        let periods: Vec<NaiveDate> = periods.into_iter().collect();
        // A task of its own, not a future of this actor's context: that one is not polled
        // while an evaluation runs, and would hold its connection all that time.
        actix_rt::spawn(async move {
            let closed = async { store::closed_among(&pool.get().await?, &periods).await };
            // Not read: tried again at the next tick.
            let closed: Result<BTreeSet<NaiveDate>, StorageError> = closed.await;
            if let Ok(closed) = closed {
                me.do_send(PeriodsClosed(closed));
            }
        });
    }

    fn report_entries(&mut self) {
        self.settled_entries.set(self.settled.len());
        if let Some(known) = &mut self.known_entries {
            known.set(self.known.len());
        }
    }

    fn checker(&self) -> Checker {
        Checker {
            pool: self.pool.clone(),
            catalog: self.catalog.clone(),
            producer: self.producer.clone(),
            topic: self.settings.alerts_topic.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Evaluate the checks `due` names; `None` if Postgres failed (they stay due).
    fn evaluate(
        &mut self,
        due: Due,
        action: &'static str,
    ) -> ResponseActFuture<Self, Option<Evaluated>> {
        // Known settled pairs are cleared without a read.
        let (due, settled) = match due {
            Due::Pairs(pairs) => {
                let now = Instant::now();
                let (settled, rest): (Vec<_>, Vec<_>) =
                    pairs.into_iter().partition(|k| self.settled.seen(k, now));
                (Due::Pairs(rest), settled)
            }
            other => (other, Vec::new()),
        };
        let checker = self.checker();
        Box::pin(
            catch_future(async move {
                faults::hit("accumulator");
                checker.evaluate(due, settled).await
            })
            .into_actor(self)
            .map(move |result, act, ctx| match result {
                Ok(Ok(done)) => {
                    let now = Instant::now();
                    act.settled.add(&done.settled, now);
                    Some(done)
                }
                Ok(Err(error)) => {
                    DatabaseFailed {
                        actor: "accumulator",
                        action,
                        error: &error,
                    }
                    .emit(&act.metrics);
                    None
                }
                // The checks stay due in Postgres; the restarted actor's sweep makes them.
                Err(panic) => {
                    act.supervision.panicked(
                        "accumulator",
                        "evaluating credit-limit checks",
                        &panic,
                    );
                    ctx.stop();
                    None
                }
            }),
        )
    }
}

impl Actor for Accumulator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.supervision.recover("accumulator", ctx);
        ctx.set_mailbox_capacity(super::stages::MAILBOX_CAPACITY);
        // At once, for checks a previous run of this instance left due, then on a timer.
        self.sweeping = true;
        ctx.notify(sweep_from_start());
        ctx.run_interval(SWEEP_EVERY, |act, ctx| {
            if !act.sweeping {
                act.sweeping = true;
                ctx.notify(sweep_from_start());
            }
        });
        ctx.run_interval(FORGET_EVERY, |act, ctx| act.forget(ctx));
        // A newer catalog changes allowances, fees and VAT of the estimates. Looked for
        // in a task of its own, as the closed periods are.
        ctx.run_interval(Duration::from_secs(30), |act, ctx| {
            let (pool, have, me) = (act.pool.clone(), act.catalog.version, ctx.address());
            actix_rt::spawn(async move {
                let newer = async {
                    let client = pool.get().await.ok()?;
                    match storage::catalog::active_version(&**client).await.ok()? {
                        Some(v) if v != have => storage::catalog::load(&**client, Some(v))
                            .await
                            .ok()
                            .flatten(),
                        _ => None,
                    }
                };
                if let Some(v) = newer.await {
                    me.do_send(CatalogFound(v));
                }
            });
        });
    }
}

impl Supervised for Accumulator {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.settled.clear();
        self.sweeping = false;
        self.supervision.restarting("accumulator");
    }
}

impl Handler<UsagePosted> for Accumulator {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: UsagePosted, _: &mut Self::Context) -> Self::Result {
        self.stage.taken();
        let pairs: BTreeSet<(i64, NaiveDate)> =
            msg.0.iter().map(|d| (d.customer_id, d.period)).collect();
        AtomicResponse::new(Box::pin(
            self.evaluate(
                Due::Pairs(pairs.into_iter().collect()),
                "check credit limits after a commit; the sweep checks them again",
            )
            .map(|_, _, _| ()),
        ))
    }
}

/// These periods are closed: what is remembered of them goes.
#[derive(Message)]
#[rtype(result = "()")]
struct PeriodsClosed(BTreeSet<NaiveDate>);

impl Handler<PeriodsClosed> for Accumulator {
    type Result = ();

    fn handle(&mut self, msg: PeriodsClosed, _: &mut Self::Context) {
        self.settled.forget(&msg.0);
        if self.settings.shard.0 == 0 {
            self.known.forget(&msg.0);
        }
        self.report_entries();
    }
}

/// A newer catalog version than the one estimates are made with.
#[derive(Message)]
#[rtype(result = "()")]
struct CatalogFound(Version);

impl Handler<CatalogFound> for Accumulator {
    type Result = ();

    fn handle(&mut self, msg: CatalogFound, _: &mut Self::Context) {
        if msg.0.version != self.catalog.version {
            self.catalog = Arc::new(msg.0);
        }
    }
}

impl Handler<Drain> for Accumulator {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Self::Context) {}
}

impl Handler<Sweep> for Accumulator {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Sweep, _: &mut Self::Context) -> Self::Result {
        let (shard, shards) = self.settings.shard;
        let slice = (shard as i64, shards.max(1) as i64);
        AtomicResponse::new(Box::pin(
            self.evaluate(
                Due::Page {
                    slice,
                    after: msg.after,
                },
                "sweep credit-limit checks left due; the next sweep tries again",
            )
            .map(|done, act, ctx| match done.and_then(|d| d.next_page) {
                Some(after) => ctx.notify(Sweep { after }),
                None => act.sweeping = false,
            }),
        ))
    }
}

impl Handler<Refresh> for Accumulator {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Refresh, _: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(Box::pin(
            self.evaluate(
                Due::Customers(msg.0),
                "check credit limits after usage changed; the sweep checks them again",
            )
            .map(|_, _, _| ()),
        ))
    }
}

/// Which checks to evaluate.
enum Due {
    /// Those of these (customer, period) pairs, sorted, if still due.
    Pairs(Vec<(i64, NaiveDate)>),
    /// Those of these customers.
    Customers(Vec<i64>),
    /// A page of those left due for a while in a slice (shard, shards), after a key.
    Page {
        slice: (i64, i64),
        after: (i64, NaiveDate),
    },
}

/// What an evaluation came to.
struct Evaluated {
    /// Customer periods found with every threshold raised.
    settled: Vec<(i64, NaiveDate)>,
    /// For a full page: the key the next page starts after.
    next_page: Option<(i64, NaiveDate)>,
}

/// What evaluating checks needs, taken from the actor so that it runs outside it.
struct Checker {
    pool: Pool,
    catalog: Arc<Version>,
    producer: FutureProducer,
    topic: Option<String>,
    metrics: Metrics,
}

/// Where the upper bound places a check.
#[derive(Debug, PartialEq, Eq)]
enum Triage {
    /// Every threshold is raised.
    Settled,
    /// Below the lowest threshold not raised yet, whatever the exact estimate.
    Below,
    /// Only the exact estimate can tell.
    Near,
}

/// Place a check with the upper bound of its estimate, without its buckets.
fn triage(catalog: &Version, check: &PendingCheck) -> Triage {
    let Some(lowest) = billing::ALERT_THRESHOLDS
        .iter()
        .find(|t| !check.raised.contains(t))
    else {
        return Triage::Settled;
    };
    let c = &catalog.catalog;
    // A plan this catalog does not know has no fee to bound with: the exact estimate
    // decides (and leaves the check due until a catalog knows the plan).
    if c.plan(&check.account.bill_to.plan).is_none() {
        return Triage::Near;
    }
    let ceiling = billing::total_ceiling(c, &check.account.bill_to, &Usage::default(), &[])
        + (check.gross.max(Decimal::ZERO) + check.owed_at_most)
            * (Decimal::ONE + c.operator.vat_rate);
    if ceiling * Decimal::ONE_HUNDRED < check.account.credit_limit * Decimal::from(*lowest) {
        Triage::Below
    } else {
        Triage::Near
    }
}

impl Checker {
    /// Evaluate the checks `due` names and clear those decided; `settled` are known to
    /// have every threshold raised and are cleared as they are.
    async fn evaluate(
        &self,
        due: Due,
        settled: Vec<(i64, NaiveDate)>,
    ) -> Result<Evaluated, StorageError> {
        let mut client = self.pool.get().await?;
        let mut next_page = None;
        let pairs = match due {
            Due::Pairs(pairs) => pairs,
            Due::Customers(ids) => store::checks_of(&client, &ids).await?,
            Due::Page { slice, after } => {
                let page =
                    store::checks_page(&client, slice, after, SWEEP_MIN_AGE, SWEEP_PAGE).await?;
                if page.len() as i64 == SWEEP_PAGE {
                    next_page = page.last().copied();
                }
                page
            }
        };
        let mut done: Vec<(i64, NaiveDate, Option<i64>)> =
            settled.iter().map(|&(c, p)| (c, p, None)).collect();
        let mut now_settled = Vec::new();
        let mut near = Vec::new();
        for check in store::pending_checks(&client, &pairs).await? {
            let key = (check.account.bill_to.id, check.period);
            match triage(&self.catalog, &check) {
                Triage::Settled => {
                    now_settled.push(key);
                    done.push((key.0, key.1, None));
                }
                Triage::Below => done.push((key.0, key.1, Some(check.seq))),
                Triage::Near => near.push(check),
            }
        }
        if !near.is_empty() {
            match self.confirm_and_raise(&mut client, near).await {
                Ok(decided) => {
                    for d in decided {
                        done.push((d.key.0, d.key.1, Some(d.seq)));
                        if d.settled {
                            now_settled.push(d.key);
                        }
                    }
                }
                // They stay due; the rest is decided all the same.
                Err(error) => DatabaseFailed {
                    actor: "accumulator",
                    action: "raise credit-limit alerts; the sweep checks them again",
                    error: &error,
                }
                .emit(&self.metrics),
            }
        }
        store::clear_checks(&client, &done).await?;
        Ok(Evaluated {
            settled: now_settled,
            next_page,
        })
    }

    /// Estimate each check exactly from the stored buckets and raise what it reached,
    /// publishing each new alert. A check whose estimate cannot be made (a plan the
    /// catalog this shard holds does not have yet) is left due, for a later catalog.
    async fn confirm_and_raise(
        &self,
        client: &mut deadpool_postgres::Client,
        near: Vec<PendingCheck>,
    ) -> Result<Vec<Decided>, StorageError> {
        let catalog = &self.catalog;
        let tz = catalog.catalog.operator.timezone.name();
        // One transaction and a few statements for all of them: their buckets, then what
        // closed periods add, per period.
        let tx = client.transaction().await?;
        let ids: Vec<i64> = near.iter().map(|c| c.account.bill_to.id).collect();
        let periods: BTreeSet<NaiveDate> = near.iter().map(|c| c.period).collect();
        let periods: Vec<NaiveDate> = periods.into_iter().collect();
        let mut usages = store::buckets(&tx, &ids, &periods).await?;
        let mut owed_in: BTreeMap<NaiveDate, BTreeMap<i64, Vec<billing::Adjustment>>> =
            BTreeMap::new();
        for period in &periods {
            let of_period: Vec<i64> = near
                .iter()
                .filter(|c| c.period == *period)
                .map(|c| c.account.bill_to.id)
                .collect();
            owed_in.insert(*period, invoices::owed(&tx, &of_period, *period, tz).await?);
        }
        let mut decided = Vec::new();
        let mut reached_now = Vec::new();
        for check in near {
            let account = &check.account;
            let id = account.bill_to.id;
            let usage = usages.remove(&(id, check.period)).unwrap_or_default();
            let owed = owed_in
                .get_mut(&check.period)
                .and_then(|o| o.remove(&id))
                .unwrap_or_default();
            let Ok(estimate) = billing::invoice(
                &catalog.catalog,
                catalog.version,
                &account.bill_to,
                check.period,
                &usage,
                &owed,
            ) else {
                continue;
            };
            let reached =
                billing::thresholds_reached(estimate.total, account.credit_limit, &check.raised);
            let settled = billing::ALERT_THRESHOLDS
                .iter()
                .all(|t| check.raised.contains(t) || reached.contains(t));
            for &threshold in &reached {
                reached_now.push(Alert {
                    customer_id: id,
                    msisdn: account.bill_to.msisdn.clone(),
                    period: check.period,
                    threshold,
                    amount: estimate.total,
                    credit_limit: account.credit_limit,
                    raised_at: Utc::now(),
                });
            }
            decided.push(Decided {
                key: (id, check.period),
                seq: check.seq,
                settled,
            });
        }
        let new = store::raise_alerts(&tx, reached_now).await?;
        // Published before the commit, side by side: a crash in between raises and
        // publishes them again (at least once on the topic, exactly once in Postgres).
        if let Some(topic) = self.topic.as_deref() {
            let sends = new.iter().map(|alert| {
                let payload = serde_json::to_string(alert).unwrap_or_default();
                let key = alert.customer_id.to_string();
                let producer = &self.producer;
                async move {
                    producer
                        .send(
                            FutureRecord::to(topic).key(&key).payload(&payload),
                            Duration::from_secs(10),
                        )
                        .await
                }
            });
            for result in futures::future::join_all(sends).await {
                if let Err((error, _)) = result {
                    warn!(%error, "Failed to publish a credit-limit alert; it is stored.");
                }
            }
        }
        tx.commit().await?;
        for alert in &new {
            AlertRaised {
                threshold: alert.threshold,
            }
            .emit(&self.metrics);
        }
        Ok(decided)
    }
}

/// A check decided by its exact estimate.
struct Decided {
    key: (i64, NaiveDate),
    /// The marker's seq when it was read.
    seq: i64,
    /// Every threshold is now raised.
    settled: bool,
}

/// The shard of a customer.
pub fn shard_of(customer_id: i64, shards: usize) -> usize {
    (customer_id.unsigned_abs() % shards.max(1) as u64) as usize
}

/// Customer months with every threshold raised, and when each was last seen: their
/// checks are cleared without reading them. At most `capacity`; beyond it the least
/// recently seen go first, an eighth at a time so that the sort is paid seldom.
pub struct Settled {
    seen: HashMap<(i64, NaiveDate), Instant>,
    capacity: usize,
    /// One not seen for this long is forgotten.
    idle: Duration,
}

impl Settled {
    pub fn new(capacity: usize, idle: Duration) -> Self {
        Settled {
            seen: HashMap::new(),
            capacity,
            idle,
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Whether `key` is settled; if so, it was seen `now`.
    pub fn seen(&mut self, key: &(i64, NaiveDate), now: Instant) -> bool {
        match self.seen.get_mut(key) {
            Some(seen) => {
                *seen = now;
                true
            }
            None => false,
        }
    }

    /// These customer months are now settled.
    pub fn add(&mut self, keys: &[(i64, NaiveDate)], now: Instant) {
        if self.capacity == 0 {
            return;
        }
        self.seen.extend(keys.iter().map(|k| (*k, now)));
        if self.seen.len() > self.capacity {
            self.keep_newest(self.capacity - self.capacity / 8);
        }
    }

    /// Forget those not seen for the idle time.
    pub fn evict(&mut self) {
        let idle = self.idle;
        self.seen.retain(|_, seen| seen.elapsed() < idle);
    }

    fn keep_newest(&mut self, keep: usize) {
        let mut by_age: Vec<(Instant, (i64, NaiveDate))> =
            self.seen.iter().map(|(k, seen)| (*seen, *k)).collect();
        by_age.sort_unstable();
        let over = by_age.len().saturating_sub(keep);
        for (_, k) in by_age.into_iter().take(over) {
            self.seen.remove(&k);
        }
    }

    /// The periods of the customer months held.
    pub fn periods(&self) -> BTreeSet<NaiveDate> {
        self.seen.keys().map(|(_, p)| *p).collect()
    }

    /// Forget every customer month of these periods.
    pub fn forget(&mut self, periods: &BTreeSet<NaiveDate>) {
        self.seen.retain(|(_, p), _| !periods.contains(p));
    }

    pub fn clear(&mut self) {
        self.seen.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(m: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, 1).unwrap()
    }

    #[test]
    fn settled_months_stay_within_their_capacity_forgetting_the_least_recently_seen() {
        let mut settled = Settled::new(16, Duration::from_secs(3600));
        let start = Instant::now();
        for c in 0..16 {
            settled.add(&[(c, month(9))], start + Duration::from_millis(c as u64));
        }
        assert_eq!(settled.len(), 16);
        // Customer 0, the oldest, is seen again: it is now the newest.
        assert!(settled.seen(&(0, month(9)), start + Duration::from_secs(1)));
        settled.add(&[(16, month(9))], start + Duration::from_secs(2));
        assert!(settled.len() <= 16);
        assert_eq!(settled.len(), 14, "an eighth goes at once");
        let now = start + Duration::from_secs(3);
        assert!(settled.seen(&(0, month(9)), now));
        assert!(settled.seen(&(16, month(9)), now));
        assert!(
            !settled.seen(&(1, month(9)), now),
            "the least recently seen went"
        );
        assert!(!settled.seen(&(3, month(9)), now));
        assert!(settled.seen(&(4, month(9)), now));
    }

    #[test]
    fn settled_months_of_closed_periods_are_forgotten() {
        let mut settled = Settled::new(100, Duration::from_secs(3600));
        let now = Instant::now();
        settled.add(
            &[(1, month(8)), (1, month(9)), (2, month(9)), (2, month(10))],
            now,
        );
        assert_eq!(settled.periods(), [month(8), month(9), month(10)].into());
        settled.forget(&[month(8), month(9)].into());
        assert_eq!(settled.periods(), [month(10)].into());
        assert!(settled.seen(&(2, month(10)), now));
        assert!(!settled.seen(&(1, month(9)), now));
        let mut none = Settled::new(0, Duration::from_secs(1));
        none.add(&[(1, month(9))], now);
        assert!(none.is_empty());
    }
}
