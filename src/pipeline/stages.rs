//! The two mediation stages, thin shells around the domain: the Validator decodes and
//! checks each record, the Normalizer turns valid records into canonical events and
//! hands them to the Rater. Each
//! does its CPU work in the handler (so batches keep their order) and forwards with
//! `send()`, answering with whatever the next stage answers.

use super::faults;
use super::messages::{Batch, PipelineError};
use super::rater::Rater;
use super::supervision::{catch, Supervision};
use crate::domain::batch::Verdict;
use crate::domain::{Normalizer as DomainNormalizer, NumberPlan, Validation};
use crate::telemetry::metrics::{Cache, CacheGauge, StageMetrics};
use crate::telemetry::Metrics;
use actix::prelude::*;
use chrono::Utc;

/// Room in each stage's mailbox. The source never has more batches in flight than this,
/// so `send()` always finds room and enqueues in order.
pub const MAILBOX_CAPACITY: usize = 64;

pub struct Validator {
    validation: Validation,
    next: Addr<Normalizer>,
    stage: StageMetrics,
    next_stage: StageMetrics,
    supervision: Supervision,
}

impl Validator {
    pub fn new(
        validation: Validation,
        next: Addr<Normalizer>,
        metrics: Metrics,
        supervision: Supervision,
    ) -> Self {
        Validator {
            validation,
            next,
            stage: metrics.stage("validator"),
            next_stage: metrics.stage("normalizer"),
            supervision,
        }
    }
}

impl Actor for Validator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.supervision.recover("validator", ctx);
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Supervised for Validator {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.supervision.restarting("validator");
    }
}

/// A stage's answer when its work on `batch` panicked: the actor stops (its supervisor
/// restarts it) and the batch goes back to the source to be read again.
fn failed<A>(
    supervision: &Supervision,
    actor: &'static str,
    batch: &Batch,
    panic: super::supervision::Panic,
    ctx: &mut Context<A>,
) -> ResponseFuture<<Batch as Message>::Result>
where
    A: Actor<Context = Context<A>>,
{
    supervision.panicked(actor, &batch.describe(), &panic);
    ctx.stop();
    Box::pin(std::future::ready(Err(PipelineError::Panicked {
        actor,
        message: panic.0,
    })))
}

impl Handler<Batch> for Validator {
    type Result = ResponseFuture<<Batch as Message>::Result>;

    fn handle(&mut self, mut batch: Batch, ctx: &mut Self::Context) -> Self::Result {
        self.stage.taken();
        let validation = &self.validation;
        let records = &mut batch.data.records;
        let checked = catch(|| {
            faults::hit("validator");
            let now = Utc::now();
            for r in records.iter_mut() {
                // Arrival is the broker's timestamp (no later than now), so that a replay
                // gives the verdict the first run gave.
                let arrived = r.source.timestamp.map_or(now, |t| t.min(now));
                r.verdict = match validation.validate_arrived(&r.source.payload, now, arrived) {
                    Ok(cdr) => Verdict::Valid(cdr),
                    Err(rejection) => Verdict::Rejected(rejection),
                };
            }
        });
        if let Err(panic) = checked {
            return failed(&self.supervision, "validator", &batch, panic, ctx);
        }
        self.stage.handled(batch.data.records.len());
        self.next_stage.enqueued();
        let forwarded = self.next.send(batch);
        Box::pin(async move {
            forwarded
                .await
                .map_err(|_| PipelineError::StageDown("normalizer"))?
        })
    }
}

pub struct Normalizer {
    normalizer: DomainNormalizer,
    plan: NumberPlan,
    /// Parsed numbers the normalizer keeps (`pipeline::memory`).
    numbers: usize,
    cached: CacheGauge,
    next: Addr<Rater>,
    stage: StageMetrics,
    next_stage: StageMetrics,
    supervision: Supervision,
}

impl Normalizer {
    pub fn new(
        plan: NumberPlan,
        numbers: usize,
        next: Addr<Rater>,
        metrics: Metrics,
        supervision: Supervision,
    ) -> Self {
        Normalizer {
            normalizer: DomainNormalizer::with_capacity(plan.clone(), numbers),
            plan,
            numbers,
            cached: metrics.cache(Cache::Numbers),
            next,
            stage: metrics.stage("normalizer"),
            next_stage: metrics.stage("rater"),
            supervision,
        }
    }
}

impl Actor for Normalizer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.supervision.recover("normalizer", ctx);
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Supervised for Normalizer {
    fn restarting(&mut self, _: &mut Self::Context) {
        // A fresh number cache: whatever state led to the stop is gone.
        self.normalizer = DomainNormalizer::with_capacity(self.plan.clone(), self.numbers);
        self.supervision.restarting("normalizer");
    }
}

impl Handler<Batch> for Normalizer {
    type Result = ResponseFuture<<Batch as Message>::Result>;

    fn handle(&mut self, mut batch: Batch, ctx: &mut Self::Context) -> Self::Result {
        self.stage.taken();
        let normalizer = &mut self.normalizer;
        let records = &mut batch.data.records;
        let normalized = catch(|| {
            faults::hit("normalizer");
            for r in records.iter_mut() {
                r.normalize(normalizer);
            }
        });
        if let Err(panic) = normalized {
            return failed(&self.supervision, "normalizer", &batch, panic, ctx);
        }
        self.cached.set(self.normalizer.cached_numbers());
        self.stage.handled(batch.data.records.len());
        self.next_stage.enqueued();
        let forwarded = self.next.send(batch);
        Box::pin(async move {
            forwarded
                .await
                .map_err(|_| PipelineError::StageDown("rater"))?
        })
    }
}
