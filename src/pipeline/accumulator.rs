//! The BillingAccumulators: per-customer month-to-date state, sharded by customer id,
//! fed after each commit with the usage that transaction really added to the buckets.
//!
//! The state is a cache of `usage_buckets`, which the batch transaction keeps exact: a
//! customer not in memory is loaded from Postgres (the load already holds the delta that
//! triggered it, so that delta is not applied again), and idle customers are evicted,
//! which bounds memory. After each change the customer's estimated invoice total (the
//! billing code of `cdrflow bill`) is compared with the credit limit; a threshold that
//! looks reached is checked again against Postgres before it is raised, and the unique
//! key on (customer, period, threshold) makes an alert happen once per period whatever
//! restarts and replays happen.
//!
//! On start (and after a supervisor restart) each shard sweeps its customers with usage
//! in open periods: their state is rebuilt from Postgres and their thresholds checked,
//! so an alert whose batch committed just before a crash is still raised.

use crate::domain::billing::{self, Adjustment, Usage};
use crate::storage::billing::{self as store, Account, Alert, CustomerUsage};
use crate::storage::catalog::Version;
use crate::storage::invoices;
use crate::storage::{self, StorageError};
use crate::telemetry::events::{ActorRestarted, AlertRaised, DatabaseFailed};
use crate::telemetry::metrics::StageMetrics;
use crate::telemetry::Metrics;
use actix::prelude::*;
use chrono::{NaiveDate, Utc};
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
/// re-rating): read them again and check their thresholds.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Refresh(pub Vec<i64>);

/// Answered once every message before it is handled (at shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Rebuild the next page of this shard's customers with usage in open periods.
#[derive(Message)]
#[rtype(result = "()")]
struct Sweep {
    after: (i64, NaiveDate),
}

/// Customers and periods rebuilt per sweep step.
const SWEEP_PAGE: i64 = 2000;

/// Month-to-date state of one customer, for the periods seen.
struct CustomerState {
    account: Account,
    periods: BTreeMap<NaiveDate, PeriodState>,
    touched: Instant,
}

struct PeriodState {
    /// The buckets: all of them once read in full, else the deltas since the summary.
    usage: Usage,
    /// The gross amount Postgres had when the summary was read, not in `usage` (zero once
    /// the buckets are read in full).
    base: Decimal,
    raised: Vec<i16>,
    /// Owed from closed periods (late usage, re-rating), known exactly after a full read.
    owed: Vec<Adjustment>,
    /// At most what closed periods add, from the summary (zero after a full read).
    owed_at_most: Decimal,
}

#[derive(Debug, Clone)]
pub struct AccumulatorSettings {
    /// Customers kept in memory per shard; the least recently used go first beyond it.
    pub max_customers: usize,
    /// A customer not touched for this long is evicted.
    pub idle: Duration,
    /// Where alerts are published (None: stored only).
    pub alerts_topic: Option<String>,
    /// This shard's number and the number of shards, for the start-up sweep.
    pub shard: (usize, usize),
}

pub struct Accumulator {
    pool: Pool,
    catalog: Arc<Version>,
    settings: AccumulatorSettings,
    producer: FutureProducer,
    metrics: Metrics,
    stage: StageMetrics,
    customers: HashMap<i64, CustomerState>,
}

impl Accumulator {
    pub fn new(
        pool: Pool,
        catalog: Arc<Version>,
        settings: AccumulatorSettings,
        producer: FutureProducer,
        metrics: Metrics,
    ) -> Self {
        Accumulator {
            pool,
            catalog,
            settings,
            producer,
            stage: metrics.stage("accumulator"),
            metrics,
            customers: HashMap::new(),
        }
    }

    fn evict(&mut self) {
        let idle = self.settings.idle;
        self.customers.retain(|_, c| c.touched.elapsed() < idle);
        let over = self
            .customers
            .len()
            .saturating_sub(self.settings.max_customers);
        if over > 0 {
            let mut by_age: Vec<(Instant, i64)> = self
                .customers
                .iter()
                .map(|(id, c)| (c.touched, *id))
                .collect();
            by_age.sort_unstable();
            for (_, id) in by_age.into_iter().take(over) {
                self.customers.remove(&id);
            }
        }
    }
}

impl Actor for Accumulator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(super::stages::MAILBOX_CAPACITY);
        // Customer ids are positive and no usage predates 1900.
        if let Some(start) = NaiveDate::from_ymd_opt(1900, 1, 1) {
            ctx.notify(Sweep { after: (0, start) });
        }
        ctx.run_interval(Duration::from_secs(10), |act, _| act.evict());
        // A newer catalog changes allowances, fees and VAT of the estimates.
        ctx.run_interval(Duration::from_secs(30), |act, ctx| {
            let (pool, have) = (act.pool.clone(), act.catalog.version);
            ctx.spawn(
                async move {
                    let client = pool.get().await.ok()?;
                    match storage::catalog::active_version(&**client).await.ok()? {
                        Some(v) if v != have => storage::catalog::load(&**client, Some(v))
                            .await
                            .ok()
                            .flatten(),
                        _ => None,
                    }
                }
                .into_actor(act)
                .map(|newer, act, _| {
                    if let Some(v) = newer {
                        act.catalog = Arc::new(v);
                    }
                }),
            );
        });
    }
}

impl Supervised for Accumulator {
    fn restarting(&mut self, _: &mut Self::Context) {
        ActorRestarted {
            actor: "accumulator",
        }
        .emit(&self.metrics);
        self.customers.clear();
    }
}

impl Handler<UsagePosted> for Accumulator {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: UsagePosted, _: &mut Self::Context) -> Self::Result {
        self.stage.taken();
        // Apply what is in memory now; what is not is loaded (with the delta in it).
        let mut missing: BTreeSet<(i64, NaiveDate)> = BTreeSet::new();
        let mut touched: BTreeSet<(i64, NaiveDate)> = BTreeSet::new();
        let now = Instant::now();
        for d in msg.0 {
            match self.customers.get_mut(&d.customer_id).and_then(|c| {
                c.touched = now;
                c.periods.get_mut(&d.period)
            }) {
                Some(p) => {
                    p.usage.merge(d.usage);
                    touched.insert((d.customer_id, d.period));
                }
                None => {
                    missing.insert((d.customer_id, d.period));
                }
            }
        }
        AtomicResponse::new(self.load_and_check(missing, touched))
    }
}

impl Handler<Drain> for Accumulator {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Self::Context) {}
}

impl Handler<Sweep> for Accumulator {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Sweep, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let (shard, shards) = self.settings.shard;
        let (shard, shards) = (shard as i64, shards.max(1) as i64);
        AtomicResponse::new(Box::pin(
            async move {
                let client = pool.get().await.map_err(StorageError::from)?;
                store::open_usage_page(&client, shards, shard, msg.after, SWEEP_PAGE).await
            }
            .into_actor(self)
            .then(|page, act, ctx| -> ResponseActFuture<Self, ()> {
                match page {
                    Ok(pairs) => {
                        if pairs.len() as i64 == SWEEP_PAGE {
                            if let Some(&after) = pairs.last() {
                                ctx.notify(Sweep { after });
                            }
                        }
                        act.load_and_check(pairs.into_iter().collect(), BTreeSet::new())
                    }
                    Err(error) => {
                        DatabaseFailed {
                            actor: "accumulator",
                            action: "rebuild month-to-date state at start; it is loaded on use",
                            error: &error,
                        }
                        .emit(&act.metrics);
                        Box::pin(fut::ready(()))
                    }
                }
            }),
        ))
    }
}

impl Handler<Refresh> for Accumulator {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Refresh, _: &mut Self::Context) -> Self::Result {
        for id in &msg.0 {
            self.customers.remove(id);
        }
        let pool = self.pool.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let client = pool.get().await.map_err(StorageError::from)?;
                store::open_periods_of(&client, &msg.0).await
            }
            .into_actor(self)
            .then(|found, act, _| -> ResponseActFuture<Self, ()> {
                match found {
                    Ok(pairs) => act.load_and_check(pairs.into_iter().collect(), BTreeSet::new()),
                    Err(error) => {
                        DatabaseFailed {
                            actor: "accumulator",
                            action: "refresh month-to-date state",
                            error: &error,
                        }
                        .emit(&act.metrics);
                        Box::pin(fut::ready(()))
                    }
                }
            }),
        ))
    }
}

impl Accumulator {
    /// Load `missing` from Postgres, then check the thresholds of everything changed.
    fn load_and_check(
        &mut self,
        missing: BTreeSet<(i64, NaiveDate)>,
        mut touched: BTreeSet<(i64, NaiveDate)>,
    ) -> ResponseActFuture<Self, ()> {
        let pool = self.pool.clone();
        Box::pin(
            async move {
                let pairs: Vec<(i64, NaiveDate)> = missing.iter().copied().collect();
                if pairs.is_empty() {
                    return Ok(BTreeMap::new());
                }
                let client = pool.get().await.map_err(StorageError::from)?;
                store::month_summaries(&client, &pairs).await
            }
            .into_actor(self)
            .then(move |loaded, act, _| {
                match loaded {
                    Ok(summaries) => {
                        let now = Instant::now();
                        for ((id, period), m) in summaries {
                            let c = act.customers.entry(id).or_insert_with(|| CustomerState {
                                account: m.account.clone(),
                                periods: BTreeMap::new(),
                                touched: now,
                            });
                            c.account = m.account;
                            c.touched = now;
                            c.periods.insert(
                                period,
                                PeriodState {
                                    usage: Usage::default(),
                                    base: m.gross,
                                    raised: m.raised,
                                    owed: Vec::new(),
                                    owed_at_most: m.owed_at_most,
                                },
                            );
                            touched.insert((id, period));
                        }
                    }
                    Err(error) => {
                        // The cache stays without them; the next delta loads again.
                        DatabaseFailed {
                            actor: "accumulator",
                            action: "load month-to-date state",
                            error: &error,
                        }
                        .emit(&act.metrics);
                    }
                }
                    let candidates = act.over_threshold(&touched);
                    let (pool, catalog, producer, topic, metrics) = (
                        act.pool.clone(),
                        act.catalog.clone(),
                        act.producer.clone(),
                        act.settings.alerts_topic.clone(),
                        act.metrics.clone(),
                    );
                    async move {
                        if candidates.is_empty() {
                            return Vec::new();
                        }
                        match confirm_and_raise(&pool, &catalog, &producer, topic.as_deref(), &metrics, candidates).await {
                            Ok(confirmed) => confirmed,
                            Err(error) => {
                                DatabaseFailed {
                                    actor: "accumulator",
                                    action: "raise credit-limit alerts; they are checked again on the next usage",
                                    error: &error,
                                }
                                .emit(&metrics);
                                Vec::new()
                            }
                        }
                    }
                    .into_actor(act)
                    .map(|confirmed, act, _| {
                        // What Postgres said replaces the cache: a load that raced a
                        // later commit may have counted that commit's delta twice.
                        for c in confirmed {
                            if let Some(p) = act
                                .customers
                                .get_mut(&c.customer)
                                .and_then(|s| s.periods.get_mut(&c.period))
                            {
                                p.usage = c.usage;
                                p.base = Decimal::ZERO;
                                p.owed = c.owed;
                                p.owed_at_most = Decimal::ZERO;
                                p.raised.extend(c.raised);
                            }
                        }
                    })
                }),
        )
    }

    /// Customers and periods whose estimate reaches a threshold not raised yet.
    fn over_threshold(&self, touched: &BTreeSet<(i64, NaiveDate)>) -> Vec<Candidate> {
        let v = &self.catalog;
        touched
            .iter()
            .filter_map(|(id, period)| {
                let c = self.customers.get(id)?;
                let p = c.periods.get(period)?;
                // Most customers are far below: the ceiling says so without the invoice.
                let lowest = billing::ALERT_THRESHOLDS
                    .iter()
                    .find(|t| !p.raised.contains(t))?;
                let unread = p.base + p.owed_at_most;
                let ceiling =
                    billing::total_ceiling(&v.catalog, &c.account.bill_to, &p.usage, &p.owed)
                        + unread * (Decimal::ONE + v.catalog.operator.vat_rate);
                if ceiling * Decimal::ONE_HUNDRED < c.account.credit_limit * Decimal::from(*lowest)
                {
                    return None;
                }
                let candidate = Candidate {
                    account: c.account.clone(),
                    period: *period,
                    raised: p.raised.clone(),
                };
                if !unread.is_zero() {
                    // Near a threshold with buckets not read yet: Postgres decides.
                    return Some(candidate);
                }
                let estimate = billing::invoice(
                    &v.catalog,
                    v.version,
                    &c.account.bill_to,
                    *period,
                    &p.usage,
                    &p.owed,
                )
                .ok()?;
                let reached =
                    billing::thresholds_reached(estimate.total, c.account.credit_limit, &p.raised);
                (!reached.is_empty()).then_some(candidate)
            })
            .collect()
    }
}

/// A customer's period whose estimate looks past a threshold not raised yet.
struct Candidate {
    account: Account,
    period: NaiveDate,
    raised: Vec<i16>,
}

/// A candidate as Postgres has it.
struct Confirmed {
    customer: i64,
    period: NaiveDate,
    usage: Usage,
    owed: Vec<Adjustment>,
    /// Thresholds now raised (by this check or an earlier one).
    raised: Vec<i16>,
}

/// Recompute each candidate's estimate from the stored buckets (the cache may lag a
/// concurrent writer) and raise what it really reached, publishing each new alert.
async fn confirm_and_raise(
    pool: &Pool,
    catalog: &Version,
    producer: &FutureProducer,
    topic: Option<&str>,
    metrics: &Metrics,
    candidates: Vec<Candidate>,
) -> Result<Vec<Confirmed>, StorageError> {
    let mut client = pool.get().await?;
    let tz = catalog.catalog.operator.timezone.name();
    // One transaction and a few statements for all candidates: their buckets, then what
    // closed periods add, per period.
    let tx = client.transaction().await?;
    let ids: Vec<i64> = candidates.iter().map(|c| c.account.bill_to.id).collect();
    let periods: BTreeSet<NaiveDate> = candidates.iter().map(|c| c.period).collect();
    let periods: Vec<NaiveDate> = periods.into_iter().collect();
    let mut usages = store::buckets(&tx, &ids, &periods).await?;
    let mut owed_in: BTreeMap<NaiveDate, BTreeMap<i64, Vec<Adjustment>>> = BTreeMap::new();
    for period in &periods {
        let of_period: Vec<i64> = candidates
            .iter()
            .filter(|c| c.period == *period)
            .map(|c| c.account.bill_to.id)
            .collect();
        owed_in.insert(*period, invoices::owed(&tx, &of_period, *period, tz).await?);
    }
    let mut out = Vec::new();
    let mut reached_now = Vec::new();
    for Candidate {
        account,
        period,
        raised,
    } in candidates
    {
        let id = account.bill_to.id;
        let usage = usages.remove(&(id, period)).unwrap_or_default();
        let owed = owed_in
            .get_mut(&period)
            .and_then(|o| o.remove(&id))
            .unwrap_or_default();
        let Ok(estimate) = billing::invoice(
            &catalog.catalog,
            catalog.version,
            &account.bill_to,
            period,
            &usage,
            &owed,
        ) else {
            continue;
        };
        let mut reached = Vec::new();
        for threshold in billing::thresholds_reached(estimate.total, account.credit_limit, &raised)
        {
            let alert = Alert {
                customer_id: id,
                msisdn: account.bill_to.msisdn.clone(),
                period,
                threshold,
                amount: estimate.total,
                credit_limit: account.credit_limit,
                raised_at: Utc::now(),
            };
            reached_now.push(alert);
            reached.push(threshold);
        }
        out.push(Confirmed {
            customer: id,
            period,
            usage,
            owed,
            raised: reached,
        });
    }
    let new = store::raise_alerts(&tx, reached_now).await?;
    // Published before the commit, side by side: a crash in between raises and publishes
    // them again (at least once on the topic, exactly once in Postgres).
    if let Some(topic) = topic {
        let sends = new.iter().map(|alert| {
            let payload = serde_json::to_string(alert).unwrap_or_default();
            let key = alert.customer_id.to_string();
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
        .emit(metrics);
    }
    Ok(out)
}

/// The shard of a customer.
pub fn shard_of(customer_id: i64, shards: usize) -> usize {
    (customer_id.unsigned_abs() % shards.max(1) as u64) as usize
}
