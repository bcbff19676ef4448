//! Re-pricing events that are already stored (`cdrflow replay --rerate`), inside the
//! batch transaction that met them again.
//!
//! An event of an open period is updated in place and the change is logged in
//! `rating_adjustments` (in_place). An event of a closed period is never touched: the
//! difference between its new price and what was already billed for it is booked as an
//! adjustment for the next open invoice. What was billed for an event that came in time
//! is its stored amount (on its period's invoice) plus its adjustments; for a late one
//! (stored after its period was closed) it is its adjustments only, the first of which
//! billed its whole price. Either way, pricing the same event again with the same
//! catalog changes nothing, so a rerate replay can run any number of times.
//!
//! Whether a period is closed is decided under the lock of its `billing_periods` row,
//! held FOR SHARE until the batch commits, as for new usage: `cdrflow bill` closes a
//! period with an UPDATE of that row, so it waits for a batch that is pricing the
//! period's events in place, and a batch that comes after the close books adjustments.

use super::rows::{self, UsageSource};
use super::StorageError;
use crate::domain::batch::RatedCdr;
use chrono::NaiveDate;
use deadpool_postgres::Transaction;
use rust_decimal::Decimal;
use std::collections::{BTreeSet, HashMap};

struct Stored {
    customer_id: i64,
    period: Option<NaiveDate>,
    amount: Option<Decimal>,
    catalog_version: Option<i32>,
    /// The closed-period adjustments booked for it so far.
    owed: Decimal,
    /// Stored after its period was closed: its stored amount is in no invoice.
    late: bool,
}

impl Stored {
    /// What the customer was billed, or will be on the next open invoice, for the event
    /// of a closed period.
    fn billed(&self) -> Decimal {
        if self.late {
            self.owed
        } else {
            self.amount.unwrap_or(Decimal::ZERO) + self.owed
        }
    }
}

/// Price `events` again; returns how many changed and the customers whose open-period
/// buckets were rebuilt (their month-to-date state must be read again).
pub(super) async fn rerate(
    tx: &Transaction<'_>,
    events: &[(&RatedCdr, UsageSource<'_>)],
) -> Result<(u32, Vec<i64>), StorageError> {
    let ids: Vec<&str> = events
        .iter()
        .map(|(x, _)| x.cdr.record_id.as_str())
        .collect();
    let stored: HashMap<String, Stored> = tx
        .query(
            &tx.prepare_cached(include_str!("sql/rerate_stored.sql"))
                .await?,
            &[&ids],
        )
        .await?
        .into_iter()
        .map(|r| {
            (
                r.get(0),
                Stored {
                    customer_id: r.get(1),
                    period: r.get(2),
                    amount: r.get(3),
                    catalog_version: r.get(4),
                    owed: r.get(5),
                    late: r.get(6),
                },
            )
        })
        .collect();
    // The periods the events are in and those they would move to (the catalog's time
    // zone decides the month). A period without a row yet is given one, so that a close
    // of it waits too.
    let periods: Vec<NaiveDate> = events
        .iter()
        .filter_map(|(x, _)| {
            let s = stored.get(&x.cdr.record_id)?;
            Some([s.period.unwrap_or(x.rating.period), x.rating.period])
        })
        .flatten()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let closed = super::billing::lock_periods(tx, &periods).await?;

    let mut update: Vec<(&RatedCdr, UsageSource)> = Vec::new();
    let mut adj = Adjustments::default();
    let mut rebuild: BTreeSet<(i64, NaiveDate)> = BTreeSet::new();
    for (x, source) in events {
        let x = *x;
        let Some(s) = stored.get(&x.cdr.record_id) else {
            continue;
        };
        let new = x.rating.amount;
        // Rows stored before rating existed have no price: pricing them is a change too.
        let old = s.amount.unwrap_or(Decimal::ZERO);
        let period = s.period.unwrap_or(x.rating.period);
        // An event that would move from an open period into a closed one is not moved
        // either: the closed period's buckets stay as invoiced.
        if closed.contains(&period) || closed.contains(&x.rating.period) {
            let billed = s.billed();
            if new != billed {
                adj.push(x, s.customer_id, period, billed, new, false);
            }
        } else if s.amount != Some(new) || s.catalog_version != Some(x.catalog_version) {
            if s.amount != Some(new) {
                adj.push(x, s.customer_id, period, old, new, true);
            }
            update.push((x, *source));
            rebuild.insert((s.customer_id, period));
            rebuild.insert((s.customer_id, x.rating.period));
        }
    }
    if !update.is_empty() {
        rows::update_rating(tx, &update).await?;
    }
    if !adj.record_id.is_empty() {
        let stmt = tx
            .prepare_cached(include_str!("sql/insert_adjustments.sql"))
            .await?;
        tx.execute(
            &stmt,
            &[
                &adj.record_id,
                &adj.customer_id,
                &adj.period,
                &adj.catalog_version,
                &adj.old,
                &adj.new,
                &adj.delta,
                &adj.in_place,
            ],
        )
        .await?;
    }
    // The buckets follow the new prices: rebuilt from the events, per customer and
    // period touched (rare enough that rebuilding beats tracking old parts).
    let pairs: Vec<(i64, NaiveDate)> = rebuild.into_iter().collect();
    if !pairs.is_empty() {
        super::billing::rebuild_buckets(tx, &pairs).await?;
    }
    // What closed periods now owe goes on the open invoices' estimates.
    let owed_by: Vec<i64> = adj
        .customer_id
        .iter()
        .zip(&adj.in_place)
        .filter(|(_, in_place)| !**in_place)
        .map(|(c, _)| *c)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    super::billing::mark_checks(tx, &[], &owed_by).await?;
    let mut customers: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    customers.dedup();
    Ok((
        (update.len() + adj.in_place.iter().filter(|p| !**p).count()) as u32,
        customers,
    ))
}

#[derive(Default)]
struct Adjustments<'a> {
    record_id: Vec<&'a str>,
    customer_id: Vec<i64>,
    period: Vec<NaiveDate>,
    catalog_version: Vec<i32>,
    old: Vec<Decimal>,
    new: Vec<Decimal>,
    delta: Vec<Decimal>,
    in_place: Vec<bool>,
}

impl<'a> Adjustments<'a> {
    fn push(
        &mut self,
        x: &'a RatedCdr,
        customer_id: i64,
        period: NaiveDate,
        old: Decimal,
        new: Decimal,
        in_place: bool,
    ) {
        self.record_id.push(x.cdr.record_id.as_str());
        self.customer_id.push(customer_id);
        self.period.push(period);
        self.catalog_version.push(x.catalog_version);
        self.old.push(old);
        self.new.push(new);
        self.delta.push(new - old);
        self.in_place.push(in_place);
    }
}

#[cfg(test)]
mod tests {
    use super::Stored;
    use rust_decimal::Decimal;

    fn stored(amount: &str, owed: &str, late: bool) -> Stored {
        Stored {
            customer_id: 1,
            period: None,
            amount: Some(amount.parse().unwrap()),
            catalog_version: Some(1),
            owed: owed.parse().unwrap(),
            late,
        }
    }

    #[test]
    fn an_event_billed_on_its_own_invoice_was_billed_its_amount_and_its_adjustments() {
        assert_eq!(stored("0.20", "0.03", false).billed(), Decimal::new(23, 2));
        assert_eq!(stored("0.20", "0", false).billed(), Decimal::new(20, 2));
    }

    #[test]
    fn a_late_event_was_billed_its_adjustments_only() {
        // Its 'late' adjustment carries its whole price; its stored amount is on no invoice.
        assert_eq!(stored("0.20", "0.20", true).billed(), Decimal::new(20, 2));
        assert_eq!(stored("0.20", "0.23", true).billed(), Decimal::new(23, 2));
    }
}
