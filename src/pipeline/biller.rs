//! The Biller: closes and invoices billing periods on its own once they are over by the
//! configured grace period (`--close-after-days`), so usage arriving late within the
//! grace still lands on its own month's invoice. Also finishes a period whose `bill`
//! was interrupted. The work is `storage::invoices::bill_period`, as for `cdrflow bill`.

use super::faults;
use super::reporter::{RefreshNow, ReportRefresher};
use super::supervision::{catch_future, Supervision};
use crate::storage::invoices::{self, BillError};
use crate::storage::{self, StorageError};
use crate::telemetry::events::{DatabaseFailed, InvoicesIssued};
use crate::telemetry::Metrics;
use actix::prelude::*;
use chrono::{NaiveDate, Utc};
use deadpool_postgres::Pool;
use std::time::Duration;

/// How often the Biller looks for periods to close: one small indexed query.
const EVERY: Duration = Duration::from_secs(5);

pub struct Biller {
    pool: Pool,
    grace_days: u32,
    metrics: Metrics,
    running: bool,
    /// Told after invoices are issued, so the reports show them without waiting.
    reports: Option<Addr<ReportRefresher>>,
    supervision: Supervision,
}

impl Biller {
    pub fn new(
        pool: Pool,
        grace_days: u32,
        metrics: Metrics,
        reports: Option<Addr<ReportRefresher>>,
        supervision: Supervision,
    ) -> Self {
        Biller {
            pool,
            grace_days,
            metrics,
            running: false,
            reports,
            supervision,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            return;
        }
        self.running = true;
        let (pool, days, metrics) = (self.pool.clone(), self.grace_days, self.metrics.clone());
        ctx.spawn(
            catch_future(async move {
                faults::hit("biller");
                match pass(&pool, days, &metrics).await {
                    Ok(issued) => issued,
                    Err(error) => {
                        DatabaseFailed {
                            actor: "biller",
                            action: "close a billing period; will try again",
                            error: &error,
                        }
                        .emit(&metrics);
                        0
                    }
                }
            })
            .into_actor(self)
            .map(|issued, act, ctx| {
                act.running = false;
                match issued {
                    Ok(0) => {}
                    Ok(_) => {
                        if let Some(reports) = &act.reports {
                            reports.do_send(RefreshNow);
                        }
                    }
                    // Each period is billed in transactions of its own; a rerun finishes
                    // what this one left.
                    Err(panic) => {
                        act.supervision
                            .panicked("biller", "closing a billing period", &panic);
                        ctx.stop();
                    }
                }
            }),
        );
    }
}

impl Actor for Biller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.supervision.recover("biller", ctx);
        self.tick(ctx);
        ctx.run_interval(EVERY, |act, ctx| act.tick(ctx));
    }
}

impl Supervised for Biller {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.running = false;
        self.supervision.restarting("biller");
    }
}

/// Returns the invoices issued.
async fn pass(pool: &Pool, grace_days: u32, metrics: &Metrics) -> Result<u64, BillError> {
    let mut client = pool.get().await.map_err(StorageError::from)?;
    // The operator's today is at most a day away from UTC's: look with UTC's first and
    // load (parse) the catalog only when something may be due.
    if due(&client, grace_days, Utc::now().date_naive().succ_opt())
        .await?
        .is_empty()
    {
        return Ok(0);
    }
    let Some(catalog) = storage::catalog::load(&**client, None).await? else {
        return Ok(0);
    };
    let mut issued = 0;
    let today = Utc::now()
        .with_timezone(&catalog.catalog.operator.timezone)
        .date_naive();
    for period in due(&client, grace_days, Some(today)).await? {
        match invoices::bill_period(&mut client, &catalog, period, 1000).await {
            Ok(report) => {
                issued += report.issued;
                InvoicesIssued {
                    period,
                    invoices: report.issued,
                }
                .emit(metrics)
            }
            // `cdrflow bill` is at it: it finishes the period itself.
            Err(BillError::Busy) => return Ok(issued),
            Err(e) => return Err(e),
        }
    }
    Ok(issued)
}

/// Periods not invoiced yet whose grace has passed on `today`.
async fn due(
    client: &tokio_postgres::Client,
    grace_days: u32,
    today: Option<NaiveDate>,
) -> Result<Vec<NaiveDate>, StorageError> {
    let Some(today) = today else {
        return Ok(Vec::new());
    };
    storage::invoices::periods_due(client, grace_days, today).await
}
