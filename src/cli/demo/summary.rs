//! The demo's summary filled in: the outcomes cdrflow stored for the demo's topic, the
//! reconciliation against what the generator sent and expected, the month's invoices and
//! the daemon's throughput, read through `storage::summary`.

use crate::generator::GeneratorReport;
use crate::render::numbers::count;
use crate::render::summary::{line_kind_rank, InvoiceTotals, Throughput};
use crate::storage::{stats, summary};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::GenericClient;

/// What cdrflow stored from `topic` for consumer group `group`: the outcomes of all its
/// partitions together, and each partition's stored offset.
pub(super) async fn processed(
    client: &tokio_postgres::Client,
    group: &str,
    topic: &str,
) -> anyhow::Result<(stats::Outcomes, BTreeMap<i32, Option<i64>>)> {
    let s = stats::load(client, group).await?;
    let mut processed = stats::Outcomes::default();
    let mut stored_offsets = BTreeMap::new();
    for p in s.partitions.iter().filter(|p| p.topic == topic) {
        add(&mut processed, &p.outcomes);
        stored_offsets.insert(p.partition, p.stored_offset);
    }
    Ok((processed, stored_offsets))
}

/// Add one partition's outcomes to a total.
fn add(total: &mut stats::Outcomes, o: &stats::Outcomes) {
    total.consumed += o.consumed;
    total.accepted += o.accepted;
    total.duplicates += o.duplicates;
    total.suspense += o.suspense;
    for (reason, n) in &o.rejected {
        *total.rejected.entry(reason.clone()).or_default() += n;
    }
}

/// Every way what cdrflow stored differs from what the generator sent and expected: the
/// outcome counts, the balance, and each partition's stored offset against the end the
/// broker acknowledged. Empty when everything reconciles.
pub(super) fn reconcile(
    report: &GeneratorReport,
    got: &stats::Outcomes,
    stored_offsets: &BTreeMap<i32, Option<i64>>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |what: &str, expected: u64, got: i64| {
        if expected as i64 != got {
            out.push(format!(
                "{what}: expected {}, cdrflow has {}",
                count(expected),
                count(got)
            ));
        }
    };
    let e = &report.expected;
    check("records received", report.sent, got.consumed);
    check("accepted", e.accepted, got.accepted);
    check("duplicates", e.duplicates, got.duplicates);
    check("suspense", e.suspense, got.suspense);
    let reasons: BTreeSet<&String> = e.rejected.keys().chain(got.rejected.keys()).collect();
    for r in reasons {
        check(
            &format!("rejected {r}"),
            e.rejected.get(r).copied().unwrap_or(0),
            got.rejected.get(r).copied().unwrap_or(0),
        );
    }
    if !got.balanced() {
        out.push("received ≠ accepted + duplicates + suspense + rejected in Postgres".to_string());
    }
    for (partition, d) in &report.partitions {
        let stored = stored_offsets.get(partition).copied().flatten();
        if stored != Some(d.end_offset) {
            out.push(format!(
                "partition {partition}: the broker acknowledged up to offset {}, the stored offset is {}",
                d.end_offset,
                stored.map_or("none".to_string(), |o| o.to_string())
            ));
        }
    }
    out
}

/// The month's invoices: totals and range, lines by kind in the order an invoice reads,
/// and the credit-limit alerts.
pub(super) async fn invoice_totals(
    client: &impl GenericClient,
    period: NaiveDate,
) -> anyhow::Result<InvoiceTotals> {
    let t = summary::invoice_totals(client, period).await?;
    let mut lines = summary::lines_by_kind(client, period).await?;
    lines.sort_by_key(|l| line_kind_rank(&l.kind));
    Ok(InvoiceTotals {
        count: t.count,
        first: t.first,
        last: t.last,
        lines,
        subtotal: t.subtotal,
        vat: t.vat,
        total: t.total,
        alerts: summary::alerts(client, period).await?,
    })
}

/// The daemon's rate from its own batch log: from its start to the last commit, and
/// between the first and the last commit (without start-up). The generator's rate is
/// the caller's to fill in.
pub(super) async fn throughput(
    client: &impl GenericClient,
    group: &str,
    topic: &str,
    started: DateTime<Utc>,
) -> anyhow::Result<Throughput> {
    let log = summary::batch_log(client, group, topic).await?;
    let secs = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_milliseconds() as f64 / 1e3;
    let daemon_secs = log.last.map_or(0.0, |l| secs(started, l));
    Ok(Throughput {
        records: log.records,
        batches: log.batches,
        daemon_secs,
        records_per_sec: log.records as f64 / daemon_secs.max(1e-3),
        steady_records_per_sec: log
            .first
            .zip(log.last)
            .map(|(f, l)| secs(f, l))
            .filter(|s| *s > 0.0)
            .map(|s| log.records as f64 / s),
        generator_records_per_sec: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::{ExpectedOutcomes, PartitionDelivery};
    use crate::render::summary::tests::example;
    use crate::render::summary::text;

    fn outcomes(consumed: i64, accepted: i64, rejected: &[(&str, i64)]) -> stats::Outcomes {
        stats::Outcomes {
            consumed,
            accepted,
            duplicates: 0,
            suspense: 0,
            rejected: rejected.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
        }
    }

    fn report(sent: u64, accepted: u64, rejected: &[(&str, u64)]) -> GeneratorReport {
        GeneratorReport {
            sent,
            expected: ExpectedOutcomes {
                accepted,
                rejected: rejected.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
                ..Default::default()
            },
            partitions: [(
                0,
                PartitionDelivery {
                    records: sent,
                    end_offset: sent as i64,
                },
            )]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_run_that_matches_the_generator_reconciles() {
        let got = outcomes(10, 8, &[("missing_field", 2)]);
        let offsets = [(0, Some(10))].into();
        assert!(reconcile(&report(10, 8, &[("missing_field", 2)]), &got, &offsets).is_empty());
    }

    #[test]
    fn every_difference_is_named() {
        let got = outcomes(10, 7, &[("missing_field", 2), ("invalid_json", 1)]);
        let offsets = [(0, Some(9))].into();
        let m = reconcile(&report(10, 8, &[("missing_field", 2)]), &got, &offsets);
        assert_eq!(
            m,
            vec![
                "accepted: expected 8, cdrflow has 7".to_string(),
                "rejected invalid_json: expected 0, cdrflow has 1".to_string(),
                "partition 0: the broker acknowledged up to offset 10, the stored offset is 9"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn a_run_that_does_not_reconcile_says_so_and_marks_each_differing_count() {
        let got = outcomes(10, 7, &[("missing_field", 2), ("invalid_json", 1)]);
        let expected = report(10, 8, &[("missing_field", 2)]);
        let mismatches = reconcile(&expected, &got, &[(0, Some(10))].into());
        let text = text(&example(expected.expected, got, mismatches));
        assert!(
            text.contains("  NOT RECONCILED:\n    accepted: expected 8, cdrflow has 7\n"),
            "{text}"
        );
        assert!(!text.contains("Reconciled:"), "{text}");
        let marked: Vec<&str> = text.lines().filter(|l| l.ends_with('✗')).collect();
        assert_eq!(marked.len(), 3, "accepted, rejected, invalid_json: {text}");
        assert!(
            marked[0].trim_start().starts_with("accepted and rated"),
            "{text}"
        );
    }
}
