//! The demo's summary: what it holds (also written as `summary.json`), the queries
//! that fill it from Postgres — money summed in NUMERIC and carried as `Decimal`, never
//! floats — the reconciliation against the generator's report, and the text a billing
//! manager reads, in aligned tables.

use crate::generator::{ExpectedOutcomes, GeneratorReport};
use crate::storage::{invoices, stats};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Add one partition's outcomes to a total.
pub(super) fn add(total: &mut stats::Outcomes, o: &stats::Outcomes) {
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

/// The money of the billed month: revenue by service (events from the usage, amounts
/// from the invoice lines, so the columns add up as on the invoices), by the customer's
/// region, the invoices' totals and lines by kind, alerts, the top ten, and accepted
/// events dated in other months.
pub(super) async fn load_money(
    client: &tokio_postgres::Client,
    period: NaiveDate,
    s: &mut Summary,
) -> anyhow::Result<()> {
    s.revenue_by_service = client
        .query(
            "WITH ev AS (SELECT record_type AS service, count(*) AS events
                           FROM usage_events WHERE period = $1 GROUP BY 1),
                  li AS (SELECT l.service,
                                COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'usage'), 0) AS usage,
                                COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'allowance'), 0) AS allowances
                           FROM invoice_lines l JOIN invoices i USING (number)
                          WHERE i.period = $1 AND l.service IS NOT NULL GROUP BY 1)
             SELECT COALESCE(ev.service, li.service), COALESCE(ev.events, 0),
                    COALESCE(li.usage, 0), COALESCE(li.allowances, 0)
               FROM ev FULL JOIN li ON li.service = ev.service
              ORDER BY array_position(ARRAY['voice', 'sms', 'data'], COALESCE(ev.service, li.service)), 1",
            &[&period],
        )
        .await?
        .iter()
        .map(|r| {
            let (usage, allowances): (Decimal, Decimal) = (r.get(2), r.get(3));
            ServiceRevenue {
                service: r.get(0),
                events: r.get(1),
                usage,
                allowances,
                billed: usage + allowances,
            }
        })
        .collect();
    s.revenue_by_region = client
        .query(
            "SELECT c.region, count(*), sum(i.subtotal), sum(i.vat), sum(i.total)
               FROM invoices i JOIN customers c USING (customer_id)
              WHERE i.period = $1 GROUP BY 1 ORDER BY 5 DESC, 1",
            &[&period],
        )
        .await?
        .iter()
        .map(|r| RegionRevenue {
            region: r.get(0),
            invoices: r.get(1),
            subtotal: r.get(2),
            vat: r.get(3),
            total: r.get(4),
        })
        .collect();
    let t = client
        .query_one(
            "SELECT count(*), min(seq), max(seq), COALESCE(sum(subtotal), 0),
                    COALESCE(sum(vat), 0), COALESCE(sum(total), 0)
               FROM invoices WHERE period = $1",
            &[&period],
        )
        .await?;
    s.invoices = InvoiceTotals {
        count: t.get(0),
        first: t.get::<_, Option<i64>>(1).map(invoices::invoice_number),
        last: t.get::<_, Option<i64>>(2).map(invoices::invoice_number),
        subtotal: t.get(3),
        vat: t.get(4),
        total: t.get(5),
        lines: client
            .query(
                "SELECT l.kind, count(*), sum(l.amount)
                   FROM invoice_lines l JOIN invoices i USING (number)
                  WHERE i.period = $1 GROUP BY 1",
                &[&period],
            )
            .await?
            .iter()
            .map(|r| LineTotal {
                kind: r.get(0),
                lines: r.get(1),
                amount: r.get(2),
            })
            .collect(),
        alerts: client
            .query(
                "SELECT threshold, count(*) FROM alerts WHERE period = $1 GROUP BY 1 ORDER BY 1",
                &[&period],
            )
            .await?
            .iter()
            .map(|r| AlertCount {
                threshold: r.get(0),
                customers: r.get(1),
            })
            .collect(),
    };
    s.invoices
        .lines
        .sort_by_key(|l| LINE_KINDS.iter().position(|(k, _)| *k == l.kind));
    s.top_customers = client
        .query(
            "SELECT i.number, i.customer_id, c.name, c.plan, c.region, i.total
               FROM invoices i JOIN customers c USING (customer_id)
              WHERE i.period = $1 ORDER BY i.total DESC, i.seq LIMIT 10",
            &[&period],
        )
        .await?
        .iter()
        .map(|r| TopCustomer {
            number: r.get(0),
            customer_id: r.get(1),
            name: r.get(2),
            plan: r.get(3),
            region: r.get(4),
            total: r.get(5),
        })
        .collect();
    s.other_months = client
        .query(
            "SELECT to_char(period, 'YYYY-MM'), count(*) FROM usage_events
              WHERE period <> $1 AND src_topic = $2 GROUP BY 1",
            &[&period, &s.topic],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(())
}

/// The daemon's rate from its own batch log: from its start to the last commit, and
/// between the first and the last commit (without start-up).
pub(super) async fn throughput(
    client: &tokio_postgres::Client,
    group: &str,
    topic: &str,
    started: DateTime<Utc>,
) -> anyhow::Result<Throughput> {
    let r = client
        .query_one(
            "SELECT count(*), COALESCE(sum(records), 0)::int8, min(committed_at), max(committed_at)
               FROM committed_batches WHERE group_id = $1 AND topic = $2",
            &[&group, &topic],
        )
        .await?;
    let (batches, records): (i64, i64) = (r.get(0), r.get(1));
    let (first, last): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = (r.get(2), r.get(3));
    let secs = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_milliseconds() as f64 / 1e3;
    let daemon_secs = last.map_or(0.0, |l| secs(started, l));
    Ok(Throughput {
        records,
        batches,
        daemon_secs,
        records_per_sec: records as f64 / daemon_secs.max(1e-3),
        steady_records_per_sec: first
            .zip(last)
            .map(|(f, l)| secs(f, l))
            .filter(|s| *s > 0.0)
            .map(|s| records as f64 / s),
        generator_records_per_sec: 0.0,
    })
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct StepTiming {
    pub(super) step: &'static str,
    pub(super) secs: f64,
}

/// Everything the summary says, also written as `summary.json`. Money is `Decimal`
/// (serialized as strings), summed by Postgres in NUMERIC.
#[derive(Debug, Serialize)]
pub(super) struct Summary {
    pub(super) operator: String,
    pub(super) currency: String,
    /// YYYY-MM
    pub(super) period: String,
    pub(super) month: String,
    pub(super) catalog_version: i32,
    pub(super) catalog: String,
    pub(super) topic: String,
    pub(super) group: String,
    pub(super) seed: u64,
    pub(super) records: Records,
    pub(super) reconciled: bool,
    pub(super) mismatches: Vec<String>,
    pub(super) suspense: Suspense,
    pub(super) revenue_by_service: Vec<ServiceRevenue>,
    pub(super) revenue_by_region: Vec<RegionRevenue>,
    pub(super) invoices: InvoiceTotals,
    pub(super) top_customers: Vec<TopCustomer>,
    /// Accepted events of this run dated in other months (YYYY-MM): out-of-order records
    /// are sent up to two days late, so some from before the month's start arrive with it.
    pub(super) other_months: BTreeMap<String, i64>,
    pub(super) throughput: Throughput,
    pub(super) timings: Vec<StepTiming>,
    pub(super) files: Files,
    pub(super) urls: Urls,
    /// A record id whose call crosses a time band, for `cdrflow explain`.
    pub(super) explain_example: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct Records {
    pub(super) sent: u64,
    pub(super) expected: ExpectedOutcomes,
    pub(super) processed: stats::Outcomes,
}

#[derive(Debug, Serialize)]
pub(super) struct Suspense {
    pub(super) held_records: i64,
    pub(super) subscribers: i64,
    pub(super) customers_added: u64,
    pub(super) plan: String,
    pub(super) rated: i64,
    pub(super) already_stored: i64,
    pub(super) still_held: i64,
}

#[derive(Debug, Serialize)]
pub(super) struct ServiceRevenue {
    pub(super) service: String,
    pub(super) events: i64,
    /// Usage lines of the invoices (rated usage, rounded per invoice).
    pub(super) usage: Decimal,
    /// Allowance credits (negative).
    pub(super) allowances: Decimal,
    pub(super) billed: Decimal,
}

#[derive(Debug, Serialize)]
pub(super) struct RegionRevenue {
    /// The customer's region; None when it was not given (customers added from suspense).
    pub(super) region: Option<String>,
    pub(super) invoices: i64,
    pub(super) subtotal: Decimal,
    pub(super) vat: Decimal,
    pub(super) total: Decimal,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct InvoiceTotals {
    pub(super) count: i64,
    pub(super) first: Option<String>,
    pub(super) last: Option<String>,
    pub(super) lines: Vec<LineTotal>,
    pub(super) subtotal: Decimal,
    pub(super) vat: Decimal,
    pub(super) total: Decimal,
    pub(super) alerts: Vec<AlertCount>,
}

#[derive(Debug, Serialize)]
pub(super) struct LineTotal {
    pub(super) kind: String,
    pub(super) lines: i64,
    pub(super) amount: Decimal,
}

#[derive(Debug, Serialize)]
pub(super) struct AlertCount {
    pub(super) threshold: i16,
    pub(super) customers: i64,
}

#[derive(Debug, Serialize)]
pub(super) struct TopCustomer {
    pub(super) number: String,
    pub(super) customer_id: i64,
    pub(super) name: String,
    pub(super) plan: String,
    pub(super) region: Option<String>,
    pub(super) total: Decimal,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct Throughput {
    pub(super) records: i64,
    pub(super) batches: i64,
    /// From the daemon's start to its last commit (start-up included, the idle wait not).
    pub(super) daemon_secs: f64,
    pub(super) records_per_sec: f64,
    /// Between the first and the last commit.
    pub(super) steady_records_per_sec: Option<f64>,
    pub(super) generator_records_per_sec: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct Files {
    pub(super) summary_txt: String,
    pub(super) summary_json: String,
    pub(super) generator_report: String,
    pub(super) invoices_dir: String,
    pub(super) largest_invoice: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct Urls {
    pub(super) metrics: String,
    pub(super) invoices: String,
    pub(super) customer_usage: Option<String>,
    /// Whether the daemon keeps serving them after the summary (`--serve`).
    pub(super) serving: bool,
}

/// Invoice line kinds in the order an invoice reads, with what a billing manager calls them.
const LINE_KINDS: &[(&str, &str)] = &[
    ("usage", "usage charges"),
    ("allowance", "included in plans (allowances)"),
    ("plan_fee", "monthly plan fees"),
    ("discount", "discounts"),
    ("adjustment", "adjustments"),
    ("regulatory_fee", "regulatory fees"),
];

/// The summary as text: aligned tables, money with two decimals and thousands separators.
pub(super) fn render(s: &Summary) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let cur = &s.currency;
    let _ = writeln!(
        o,
        "\n{} — {} (catalog version {}, amounts in {cur})\n",
        s.operator, s.month, s.catalog_version
    );

    let _ = writeln!(o, "Records");
    let (e, p) = (&s.records.expected, &s.records.processed);
    let mut t = Table::new(&["", "expected", "cdrflow"]);
    let row = |t: &mut Table, label: String, expected: u64, got: i64| {
        let mark = if expected as i64 == got { "" } else { "  ✗" };
        t.row(vec![
            label,
            count(expected),
            format!("{}{mark}", count(got)),
        ]);
    };
    row(&mut t, "received".into(), s.records.sent, p.consumed);
    row(&mut t, "accepted and rated".into(), e.accepted, p.accepted);
    row(
        &mut t,
        "duplicates (counted, never billed)".into(),
        e.duplicates,
        p.duplicates,
    );
    row(
        &mut t,
        "suspense (unknown subscribers)".into(),
        e.suspense,
        p.suspense,
    );
    row(
        &mut t,
        "rejected".into(),
        e.rejected.values().sum(),
        p.rejected_total(),
    );
    let reasons: BTreeSet<&String> = e.rejected.keys().chain(p.rejected.keys()).collect();
    for r in reasons {
        row(
            &mut t,
            format!("  {r}"),
            e.rejected.get(r).copied().unwrap_or(0),
            p.rejected.get(r).copied().unwrap_or(0),
        );
    }
    o += &t.render();
    if s.reconciled {
        let _ = writeln!(
            o,
            "  Reconciled: every record sent is accounted for exactly once, as the generator expected."
        );
    } else {
        let _ = writeln!(o, "  NOT RECONCILED:");
        for m in &s.mismatches {
            let _ = writeln!(o, "    {m}");
        }
    }

    let u = &s.suspense;
    let _ = writeln!(o, "\nSuspense");
    let _ = writeln!(
        o,
        "  {} records of {} unknown subscribers were held. The subscribers were added as customers\n  (plan {}) before the month was closed: {} records rated, {} still held.",
        count(u.held_records),
        count(u.subscribers),
        u.plan,
        count(u.rated),
        count(u.still_held)
    );

    let _ = writeln!(o, "\nRevenue by service, {} ({cur})", s.month);
    let mut t = Table::new(&[
        "service",
        "events",
        "usage charges",
        "included in plans",
        "billed",
    ]);
    let (mut events, mut usage, mut allowances) = (0_i64, Decimal::ZERO, Decimal::ZERO);
    for r in &s.revenue_by_service {
        events += r.events;
        usage += r.usage;
        allowances += r.allowances;
        t.row(vec![
            service_name(&r.service).to_string(),
            count(r.events),
            money(r.usage),
            money(r.allowances),
            money(r.billed),
        ]);
    }
    t.row(vec![
        "total".into(),
        count(events),
        money(usage),
        money(allowances),
        money(usage + allowances),
    ]);
    o += &t.render();
    if !s.other_months.is_empty() {
        let months: Vec<String> = s
            .other_months
            .iter()
            .map(|(m, n)| format!("{} in {m}", count(*n)))
            .collect();
        let _ = writeln!(
            o,
            "  Out-of-order records arrived with this month's traffic but are dated in another month\n  ({}): they are billed with their own month, not on these invoices.",
            months.join(", ")
        );
    }

    let _ = writeln!(
        o,
        "\nRevenue by region (the customer's region, invoiced, {cur})"
    );
    let mut t = Table::new(&["region", "invoices", "subtotal", "VAT", "total"]);
    for r in &s.revenue_by_region {
        t.row(vec![
            r.region.clone().unwrap_or_else(|| "(not given)".into()),
            count(r.invoices),
            money(r.subtotal),
            money(r.vat),
            money(r.total),
        ]);
    }
    o += &t.render();

    let i = &s.invoices;
    let _ = writeln!(o, "\nInvoices issued for {}", s.month);
    match (&i.first, &i.last) {
        (Some(first), Some(last)) => {
            let _ = writeln!(o, "  {} invoices, {first} to {last}", count(i.count));
        }
        _ => {
            let _ = writeln!(o, "  none");
        }
    }
    let mut t = Table::new(&["", "lines", cur.as_str()]);
    for l in &i.lines {
        let label = LINE_KINDS
            .iter()
            .find(|(k, _)| *k == l.kind)
            .map_or(l.kind.as_str(), |(_, name)| name);
        t.row(vec![label.to_string(), count(l.lines), money(l.amount)]);
    }
    t.row(vec!["subtotal".into(), String::new(), money(i.subtotal)]);
    t.row(vec!["VAT".into(), String::new(), money(i.vat)]);
    t.row(vec!["total".into(), String::new(), money(i.total)]);
    o += &t.render();
    if !i.alerts.is_empty() {
        let alerts: Vec<String> = i
            .alerts
            .iter()
            .map(|a| {
                format!(
                    "{} % of the limit: {} customers",
                    a.threshold,
                    count(a.customers)
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "  Credit-limit alerts during the month: {}",
            alerts.join("; ")
        );
    }

    let _ = writeln!(
        o,
        "\nTop {} customers by invoice total ({cur})",
        s.top_customers.len()
    );
    let mut t = Table::new(&["", "invoice", "customer", "name", "plan", "region", "total"]);
    for (n, c) in s.top_customers.iter().enumerate() {
        t.row(vec![
            format!("{}.", n + 1),
            c.number.clone(),
            c.customer_id.to_string(),
            c.name.clone(),
            c.plan.clone(),
            c.region.clone().unwrap_or_default(),
            money(c.total),
        ]);
    }
    for left in [1, 3, 4, 5] {
        t.right[left] = false;
    }
    o += &t.render();

    let th = &s.throughput;
    let _ = writeln!(o, "\nThroughput");
    let _ = writeln!(
        o,
        "  daemon: {} records in {} batches, {:.1} s from start-up to the last commit: {} records/s{}",
        count(th.records),
        count(th.batches),
        th.daemon_secs,
        count(th.records_per_sec.round() as i64),
        th.steady_records_per_sec.map_or(String::new(), |r| format!(
            " ({} records/s from the first commit to the last)",
            count(r.round() as i64)
        ))
    );
    let _ = writeln!(
        o,
        "  generator: {} records/s to the broker",
        count(th.generator_records_per_sec.round() as i64)
    );
    let total: f64 = s.timings.iter().map(|t| t.secs).sum();
    let steps: Vec<String> = s
        .timings
        .iter()
        .map(|t| format!("{} {:.1} s", t.step, t.secs))
        .collect();
    let _ = writeln!(o, "  steps: {}; all {total:.1} s", steps.join(", "));

    let _ = writeln!(o, "\nWhere to look");
    let f = &s.files;
    let mut t = Table::new(&["", ""]);
    t.right = vec![false, false];
    t.row(vec![
        format!("{}/", f.invoices_dir),
        format!(
            "{} invoices, NUMBER.pdf and NUMBER.json{}",
            count(i.count),
            f.largest_invoice
                .as_ref()
                .map_or(String::new(), |l| format!("; the largest: {l}"))
        ),
    ]);
    t.row(vec![
        format!("{}, {}", f.summary_txt, f.summary_json),
        "this summary, as text and JSON".into(),
    ]);
    t.row(vec![
        f.generator_report.clone(),
        "what was sent, and what each record had to become".into(),
    ]);
    t.row(vec![
        s.urls.metrics.clone(),
        "the daemon's Prometheus metrics".into(),
    ]);
    t.row(vec![
        s.urls.invoices.clone(),
        "the month's invoices (API)".into(),
    ]);
    if let Some(usage) = &s.urls.customer_usage {
        t.row(vec![
            usage.clone(),
            "a customer's usage, allowances left and estimate".into(),
        ]);
    }
    o += &t.render();
    if !s.urls.serving {
        let _ = writeln!(
            o,
            "  The daemon has stopped: run the demo with --serve (scripts/demo.sh: DEMO_SERVE=1) to keep\n  it and these URLs up until Ctrl-C."
        );
    }
    let _ = writeln!(
        o,
        "  Grafana dashboards (pipeline; revenue and customers): `docker compose up`, see README.md."
    );
    let _ = writeln!(
        o,
        "  `cdrflow stats` reconciles per partition (group {}, topic {});",
        s.group, s.topic
    );
    let _ = writeln!(
        o,
        "  `cdrflow explain {}` shows how one price was made; docs/catalog.md explains the prices.",
        s.explain_example.as_deref().unwrap_or("RECORD_ID")
    );
    o
}

fn service_name(service: &str) -> &str {
    match service {
        "sms" => "SMS",
        other => other,
    }
}

/// Columns padded to their widest cell: the first left-aligned, the rest right-aligned
/// (numbers), unless `right` says otherwise.
pub(super) struct Table {
    pub(super) head: Vec<String>,
    pub(super) right: Vec<bool>,
    pub(super) rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|h| h.to_string()).collect(),
            right: (0..head.len()).map(|i| i > 0).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        let width = |cell: &str| cell.chars().count();
        let mut widths: Vec<usize> = self.head.iter().map(|h| width(h)).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(width(c));
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .zip(&self.right)
                .map(|((c, w), right)| {
                    let pad = " ".repeat(w - width(c));
                    if *right {
                        format!("{pad}{c}")
                    } else {
                        format!("{c}{pad}")
                    }
                })
                .collect();
            format!("  {}", padded.join("   ")).trim_end().to_string() + "\n"
        };
        let mut out = String::new();
        if self.head.iter().any(|h| !h.is_empty()) {
            out += &line(&self.head);
        }
        for r in &self.rows {
            out += &line(r);
        }
        out
    }
}

/// 1234567 → "1,234,567".
pub(super) fn count(n: impl Into<i128>) -> String {
    let n: i128 = n.into();
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", grouped(&n.unsigned_abs().to_string()))
}

/// An amount with two decimals (half away from zero) and thousands separators.
fn money(d: Decimal) -> String {
    let mut d = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    d.rescale(2);
    let sign = if d.is_sign_negative() && !d.is_zero() {
        "-"
    } else {
        ""
    };
    let text = d.abs().to_string();
    let (whole, cents) = text.split_once('.').unwrap_or((&text, "00"));
    format!("{sign}{}.{cents}", grouped(whole))
}

fn grouped(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::PartitionDelivery;
    use std::str::FromStr;

    #[test]
    fn counts_and_amounts_are_grouped_by_thousands() {
        assert_eq!(count(0_u64), "0");
        assert_eq!(count(999_u64), "999");
        assert_eq!(count(1_000_u64), "1,000");
        assert_eq!(count(-1_234_567_i64), "-1,234,567");
        let d = |s| Decimal::from_str(s).unwrap();
        assert_eq!(money(d("0")), "0.00");
        assert_eq!(money(d("1234567.891")), "1,234,567.89");
        assert_eq!(money(d("0.005")), "0.01");
        assert_eq!(money(d("-1000.5")), "-1,000.50");
        assert_eq!(money(d("-0.001")), "0.00");
        assert_eq!(money(d("12.000000")), "12.00");
    }

    #[test]
    fn table_columns_line_up_whatever_the_cell_widths() {
        let mut t = Table::new(&["region", "total"]);
        t.row(vec!["Fès-Meknès".into(), "1,000.00".into()]);
        t.row(vec!["Oriental".into(), "5.00".into()]);
        assert_eq!(
            t.render(),
            "  region          total\n  Fès-Meknès   1,000.00\n  Oriental         5.00\n"
        );
    }

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

    fn summary(processed: stats::Outcomes, mismatches: Vec<String>) -> Summary {
        Summary {
            operator: "Atlas Telecom".into(),
            currency: "MAD".into(),
            period: "2026-10".into(),
            month: "October 2026".into(),
            catalog_version: 1,
            catalog: "test".into(),
            topic: "cdr.demo.1".into(),
            group: "cdrflow".into(),
            seed: 42,
            records: Records {
                sent: 10,
                expected: report(10, 8, &[("missing_field", 2)]).expected,
                processed,
            },
            reconciled: mismatches.is_empty(),
            mismatches,
            suspense: Suspense {
                held_records: 0,
                subscribers: 0,
                customers_added: 0,
                plan: "basic".into(),
                rated: 0,
                already_stored: 0,
                still_held: 0,
            },
            revenue_by_service: Vec::new(),
            revenue_by_region: Vec::new(),
            invoices: InvoiceTotals::default(),
            top_customers: Vec::new(),
            other_months: BTreeMap::new(),
            throughput: Throughput::default(),
            timings: Vec::new(),
            files: Files {
                summary_txt: "out/summary.txt".into(),
                summary_json: "out/summary.json".into(),
                generator_report: "out/generator-report.json".into(),
                invoices_dir: "out/invoices".into(),
                largest_invoice: None,
            },
            urls: Urls {
                metrics: "http://127.0.0.1:8080/metrics".into(),
                invoices: "http://127.0.0.1:8080/api/invoices?period=2026-10".into(),
                customer_usage: None,
                serving: false,
            },
            explain_example: None,
        }
    }

    #[test]
    fn a_run_that_does_not_reconcile_says_so_and_marks_each_differing_count() {
        let got = outcomes(10, 7, &[("missing_field", 2), ("invalid_json", 1)]);
        let expected = report(10, 8, &[("missing_field", 2)]);
        let mismatches = reconcile(&expected, &got, &[(0, Some(10))].into());
        let text = render(&summary(got, mismatches));
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
