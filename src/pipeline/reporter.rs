//! The ReportRefresher: keeps the report aggregates (`docs/reports.md`) fresh by calling
//! `report_refresh` every `--report-refresh-secs`, in the catalog's time zone. A refresh
//! recomputes from the stored rows, so a failed or skipped one loses nothing: the next
//! one catches up. It never runs twice at once (a slow refresh delays the next tick).

use crate::storage::reports;
use crate::telemetry::events::{DatabaseFailed, ReportsRefreshed};
use crate::telemetry::Metrics;
use actix::prelude::*;
use deadpool_postgres::Pool;
use rust_decimal::prelude::ToPrimitive;
use std::time::Duration;

pub struct ReportRefresher {
    pool: Pool,
    every: Duration,
    timezone: String,
    metrics: Metrics,
    running: bool,
}

impl ReportRefresher {
    pub fn new(pool: Pool, every: Duration, timezone: String, metrics: Metrics) -> Self {
        ReportRefresher {
            pool,
            every,
            timezone,
            metrics,
            running: false,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            return;
        }
        self.running = true;
        let (pool, tz, metrics) = (
            self.pool.clone(),
            self.timezone.clone(),
            self.metrics.clone(),
        );
        ctx.spawn(
            async move {
                let refreshed = async {
                    let client = pool.get().await?;
                    anyhow::Ok(reports::refresh(&**client, &tz).await?)
                }
                .await;
                match refreshed {
                    Ok(seconds) => ReportsRefreshed {
                        seconds: seconds.to_f64().unwrap_or_default(),
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
            }
            .into_actor(self)
            .map(|_, act, _| act.running = false),
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
        // Not at once: a daemon (re)starting on a backlog has better use for the CPU, and
        // the aggregates of the last refresh are still there, with their time.
        ctx.run_interval(self.every, |act, ctx| act.tick(ctx));
    }
}

impl Supervised for ReportRefresher {}
