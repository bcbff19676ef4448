//! The ReportRefresher: keeps the report aggregates (`docs/reports.md`) fresh by calling
//! `report_refresh` every `--report-refresh-secs`, in the catalog's time zone. A refresh
//! recomputes the periods and days whose rows changed since the last one (the database
//! marks them as they are written), so a failed or skipped one loses nothing: the next
//! one catches up. It never runs twice at once, and the next refresh starts no sooner
//! than `PACE` times the last one's duration after it ended: the first refresh, which
//! recomputes everything, takes minutes on a long history (docs/performance.md), and the
//! pipeline shares the database. A RefreshNow (a month was invoiced) that arrives during a
//! refresh gets another one right after it: the running one may have read before the
//! invoices.

use super::faults;
use super::supervision::{catch_future, Supervision};
use crate::storage::{reports, StorageError};
use crate::telemetry::events::{DatabaseFailed, ReportsRefreshed};
use crate::telemetry::Metrics;
use actix::prelude::*;
use deadpool_postgres::Pool;
use rust_decimal::prelude::ToPrimitive;
use std::time::Duration;

/// The refresher keeps to at most 1 / (1 + PACE) of the time, however slow a refresh gets.
const PACE: u32 = 4;

pub struct ReportRefresher {
    pool: Pool,
    every: Duration,
    timezone: String,
    metrics: Metrics,
    running: bool,
    /// Asked for (RefreshNow) while a refresh ran, which may have read before the news.
    again: bool,
    next: Option<SpawnHandle>,
    supervision: Supervision,
}

impl ReportRefresher {
    pub fn new(
        pool: Pool,
        every: Duration,
        timezone: String,
        metrics: Metrics,
        supervision: Supervision,
    ) -> Self {
        ReportRefresher {
            pool,
            every,
            timezone,
            metrics,
            running: false,
            again: false,
            next: None,
            supervision,
        }
    }

    /// The next tick, `after` from now, in place of any pending one.
    fn schedule(&mut self, ctx: &mut Context<Self>, after: Duration) {
        if let Some(pending) = self.next.take() {
            ctx.cancel_future(pending);
        }
        self.next = Some(ctx.run_later(after, |act, ctx| {
            act.next = None;
            act.tick(ctx);
        }));
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            self.again = true;
            return;
        }
        if let Some(pending) = self.next.take() {
            ctx.cancel_future(pending);
        }
        self.running = true;
        let (pool, tz, metrics) = (
            self.pool.clone(),
            self.timezone.clone(),
            self.metrics.clone(),
        );
        ctx.spawn(
            catch_future(async move {
                faults::hit("reporter");
                let started = std::time::Instant::now();
                let refreshed = async {
                    let client = pool.get().await.map_err(StorageError::from)?;
                    reports::refresh(&**client, &tz, false).await
                }
                .await;
                match refreshed {
                    Ok(done) => ReportsRefreshed {
                        seconds: done.seconds.to_f64().unwrap_or_default(),
                        periods: done.periods.len(),
                        at: chrono::Utc::now(),
                    }
                    .emit(&metrics),
                    Err(error) => DatabaseFailed {
                        actor: "reporter",
                        action: "refresh the report aggregates; will try again",
                        error: &error,
                    }
                    .emit(&metrics),
                }
                started.elapsed()
            })
            .into_actor(self)
            .map(|took, act, ctx| {
                act.running = false;
                let took = match took {
                    Ok(took) => took,
                    // A refresh is one transaction: the next one catches up.
                    Err(panic) => {
                        act.supervision
                            .panicked("reporter", "a report refresh", &panic);
                        ctx.stop();
                        return;
                    }
                };
                if std::mem::take(&mut act.again) {
                    act.tick(ctx);
                } else {
                    act.schedule(ctx, act.every.max(took * PACE));
                }
            }),
        );
    }
}

/// Ask for a refresh now (after a period is invoiced).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RefreshNow;

impl Handler<RefreshNow> for ReportRefresher {
    type Result = ();

    fn handle(&mut self, _: RefreshNow, ctx: &mut Self::Context) {
        self.tick(ctx);
    }
}

impl Actor for ReportRefresher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.supervision.recover("reporter", ctx);
        // Not at once: a daemon (re)starting on a backlog has better use for the CPU, and
        // the aggregates of the last refresh are still there, with their time.
        self.schedule(ctx, self.every);
    }
}

impl Supervised for ReportRefresher {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.running = false;
        self.next = None;
        self.supervision.restarting("reporter");
    }
}
