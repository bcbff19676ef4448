//! The two mediation stages, thin shells around the domain: the Validator decodes and
//! checks each record, the Normalizer turns valid records into canonical events and
//! hands them to the Rater. Each
//! does its CPU work in the handler (so batches keep their order) and forwards with
//! `send()`, answering with whatever the next stage answers.

use super::messages::{Batch, PipelineError};
use super::rater::Rater;
use crate::domain::batch::Verdict;
use crate::domain::{Normalizer as DomainNormalizer, NumberPlan, Validation};
use crate::telemetry::events::ActorRestarted;
use crate::telemetry::metrics::StageMetrics;
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
    metrics: Metrics,
}

impl Validator {
    pub fn new(validation: Validation, next: Addr<Normalizer>, metrics: Metrics) -> Self {
        Validator {
            validation,
            next,
            stage: metrics.stage("validator"),
            next_stage: metrics.stage("normalizer"),
            metrics,
        }
    }
}

impl Actor for Validator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Supervised for Validator {
    fn restarting(&mut self, _: &mut Self::Context) {
        ActorRestarted { actor: "validator" }.emit(&self.metrics);
    }
}

impl Handler<Batch> for Validator {
    type Result = ResponseFuture<<Batch as Message>::Result>;

    fn handle(&mut self, mut batch: Batch, _: &mut Self::Context) -> Self::Result {
        self.stage.taken();
        self.stage.handled(batch.data.records.len());
        let now = Utc::now();
        for r in &mut batch.data.records {
            // Arrival is the broker's timestamp (no later than now), so that a replay gives
            // the verdict the first run gave.
            let arrived = r.source.timestamp.map_or(now, |t| t.min(now));
            r.verdict = match self
                .validation
                .validate_arrived(&r.source.payload, now, arrived)
            {
                Ok(cdr) => Verdict::Valid(cdr),
                Err(rejection) => Verdict::Rejected(rejection),
            };
        }
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
    next: Addr<Rater>,
    stage: StageMetrics,
    next_stage: StageMetrics,
    metrics: Metrics,
}

impl Normalizer {
    pub fn new(plan: NumberPlan, next: Addr<Rater>, metrics: Metrics) -> Self {
        Normalizer {
            normalizer: DomainNormalizer::new(plan.clone()),
            plan,
            next,
            stage: metrics.stage("normalizer"),
            next_stage: metrics.stage("rater"),
            metrics,
        }
    }
}

impl Actor for Normalizer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Supervised for Normalizer {
    fn restarting(&mut self, _: &mut Self::Context) {
        // A fresh number cache: whatever state led to the stop is gone.
        self.normalizer = DomainNormalizer::new(self.plan.clone());
        ActorRestarted {
            actor: "normalizer",
        }
        .emit(&self.metrics);
    }
}

impl Handler<Batch> for Normalizer {
    type Result = ResponseFuture<<Batch as Message>::Result>;

    fn handle(&mut self, mut batch: Batch, _: &mut Self::Context) -> Self::Result {
        self.stage.taken();
        self.stage.handled(batch.data.records.len());
        for r in &mut batch.data.records {
            r.verdict = match std::mem::replace(&mut r.verdict, Verdict::Received) {
                Verdict::Valid(cdr) => match self.normalizer.normalize(cdr) {
                    Ok(n) => Verdict::Normalized(n),
                    Err(rejection) => Verdict::Rejected(rejection),
                },
                decided => decided,
            };
        }
        self.next_stage.enqueued();
        let forwarded = self.next.send(batch);
        Box::pin(async move {
            forwarded
                .await
                .map_err(|_| PipelineError::StageDown("rater"))?
        })
    }
}
