//! The demo's summary: what a billing manager asks first — did every record arrive
//! exactly once, what is the month worth, who was invoiced for how much, and where to
//! look next. The value is also written as `summary.json` (money as `Decimal`, serialized
//! as strings, summed by Postgres in NUMERIC); [`text`] renders it in aligned tables,
//! money with the decimals of the operator's currency.

use super::numbers::{self, count};
use super::table::Table;
use crate::domain::billing::LineKind;
use crate::generator::ExpectedOutcomes;
use crate::storage::stats;
use crate::storage::summary::{AlertCount, LineTotal, RegionRevenue, ServiceRevenue, TopCustomer};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// How long a step of the demo took, in seconds to one decimal.
#[derive(Debug, Clone, Serialize)]
pub struct StepTiming {
    pub step: &'static str,
    pub secs: f64,
}

/// Everything the summary says, also written as `summary.json`. Money is `Decimal`
/// (serialized as strings), summed by Postgres in NUMERIC.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub operator: String,
    pub currency: String,
    /// YYYY-MM
    pub period: String,
    pub month: String,
    pub catalog_version: i32,
    pub catalog: String,
    pub topic: String,
    pub group: String,
    pub seed: u64,
    pub records: Records,
    pub reconciled: bool,
    pub mismatches: Vec<String>,
    pub suspense: Suspense,
    pub revenue_by_service: Vec<ServiceRevenue>,
    pub revenue_by_region: Vec<RegionRevenue>,
    pub invoices: InvoiceTotals,
    pub top_customers: Vec<TopCustomer>,
    /// Accepted events of this run dated in other months (YYYY-MM): out-of-order records
    /// are sent up to two days late, so some from before the month's start arrive with it.
    pub other_months: BTreeMap<String, i64>,
    pub throughput: Throughput,
    pub timings: Vec<StepTiming>,
    pub files: Files,
    pub urls: Urls,
    /// A record id whose call crosses a time band, for `cdrflow explain`.
    pub explain_example: Option<String>,
}

/// Records sent, what the generator expected of them, and what cdrflow stored.
#[derive(Debug, Serialize)]
pub struct Records {
    pub sent: u64,
    pub expected: ExpectedOutcomes,
    pub processed: stats::Outcomes,
}

/// The records held for unknown subscribers, and the customers added to rate them.
#[derive(Debug, Serialize)]
pub struct Suspense {
    pub held_records: i64,
    pub subscribers: i64,
    pub customers_added: u64,
    pub plan: String,
    pub rated: i64,
    pub already_stored: i64,
    pub still_held: i64,
}

/// The month's invoices: their range, lines by kind, totals and alerts.
#[derive(Debug, Default, Serialize)]
pub struct InvoiceTotals {
    pub count: i64,
    pub first: Option<String>,
    pub last: Option<String>,
    pub lines: Vec<LineTotal>,
    pub subtotal: Decimal,
    pub vat: Decimal,
    pub total: Decimal,
    pub alerts: Vec<AlertCount>,
}

/// The daemon's rate from its batch log, and the generator's.
#[derive(Debug, Default, Serialize)]
pub struct Throughput {
    pub records: i64,
    pub batches: i64,
    /// From the daemon's start to its last commit (start-up included, the idle wait not).
    pub daemon_secs: f64,
    pub records_per_sec: f64,
    /// Between the first and the last commit.
    pub steady_records_per_sec: Option<f64>,
    pub generator_records_per_sec: f64,
}

/// The files the demo wrote.
#[derive(Debug, Serialize)]
pub struct Files {
    pub summary_txt: String,
    pub summary_json: String,
    pub generator_report: String,
    pub invoices_dir: String,
    pub largest_invoice: Option<String>,
}

/// Where the daemon serves its metrics and the billing API.
#[derive(Debug, Serialize)]
pub struct Urls {
    pub metrics: String,
    pub invoices: String,
    pub customer_usage: Option<String>,
    /// Whether the daemon keeps serving them after the summary (`--serve`).
    pub serving: bool,
}

/// Invoice line kinds in the order an invoice reads, with what a billing manager calls them.
const LINE_KINDS: &[(LineKind, &str)] = &[
    (LineKind::Usage, "usage charges"),
    (LineKind::Allowance, "included in plans (allowances)"),
    (LineKind::PlanFee, "monthly plan fees"),
    (LineKind::Discount, "discounts"),
    (LineKind::Adjustment, "adjustments"),
    (LineKind::RegulatoryFee, "regulatory fees"),
];

/// Where lines of `kind` come in the summary: in the order an invoice reads, kinds this
/// list does not know first.
pub fn line_kind_rank(kind: &str) -> Option<usize> {
    LINE_KINDS.iter().position(|(k, _)| k.as_str() == kind)
}

/// The summary as text: aligned tables, counts and money with thousands separators,
/// money with the decimals of the currency's minor unit.
pub fn text(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n{} — {} (catalog version {}, amounts in {})\n",
        s.operator, s.month, s.catalog_version, s.currency
    );
    records(&mut o, s);
    suspense(&mut o, s);
    revenue_by_service(&mut o, s);
    revenue_by_region(&mut o, s);
    invoices(&mut o, s);
    top_customers(&mut o, s);
    throughput(&mut o, s);
    where_to_look(&mut o, s);
    o
}

/// Sent and expected against what cdrflow stored, each differing count marked, and whether
/// it reconciles.
fn records(o: &mut String, s: &Summary) {
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
    o.push_str(&t.render());
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
}

/// What became of the records held for unknown subscribers.
fn suspense(o: &mut String, s: &Summary) {
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
}

/// The month by service, and the events dated in other months.
fn revenue_by_service(o: &mut String, s: &Summary) {
    let cur = &s.currency;
    let money = |amount: Decimal| numbers::money(amount, cur);
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
    o.push_str(&t.render());
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
}

/// The month's invoices by the customer's region.
fn revenue_by_region(o: &mut String, s: &Summary) {
    let cur = &s.currency;
    let money = |amount: Decimal| numbers::money(amount, cur);
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
    o.push_str(&t.render());
}

/// The invoices issued: their range, lines by kind, totals and alerts.
fn invoices(o: &mut String, s: &Summary) {
    let cur = &s.currency;
    let money = |amount: Decimal| numbers::money(amount, cur);
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
            .find(|(k, _)| k.as_str() == l.kind)
            .map_or(l.kind.as_str(), |(_, name)| name);
        t.row(vec![label.to_string(), count(l.lines), money(l.amount)]);
    }
    t.row(vec!["subtotal".into(), String::new(), money(i.subtotal)]);
    t.row(vec!["VAT".into(), String::new(), money(i.vat)]);
    t.row(vec!["total".into(), String::new(), money(i.total)]);
    o.push_str(&t.render());
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
}

/// The largest invoices.
fn top_customers(o: &mut String, s: &Summary) {
    let cur = &s.currency;
    let money = |amount: Decimal| numbers::money(amount, cur);
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
    o.push_str(&t.render());
}

/// The daemon's and the generator's rates, and each step's time.
fn throughput(o: &mut String, s: &Summary) {
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
}

/// The files written, the URLs and the commands to look further with.
fn where_to_look(o: &mut String, s: &Summary) {
    let _ = writeln!(o, "\nWhere to look");
    let f = &s.files;
    let mut t = Table::new(&["", ""]);
    t.right = vec![false, false];
    t.row(vec![
        format!("{}/", f.invoices_dir),
        format!(
            "{} invoices, NUMBER.pdf and NUMBER.json{}",
            count(s.invoices.count),
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
    o.push_str(&t.render());
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
}

fn service_name(service: &str) -> &str {
    match service {
        "sms" => "SMS",
        other => other,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::str::FromStr;

    /// A summary of a small run in MAD with nothing billed, for tests to change.
    pub(crate) fn example(
        expected: ExpectedOutcomes,
        processed: stats::Outcomes,
        mismatches: Vec<String>,
    ) -> Summary {
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
                expected,
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
    fn money_has_the_decimals_of_the_operators_currency() {
        let d = |s| Decimal::from_str(s).unwrap();
        let mut s = example(
            ExpectedOutcomes::default(),
            stats::Outcomes::default(),
            Vec::new(),
        );
        s.invoices.subtotal = d("1234.5");
        let subtotal = |s: &Summary| {
            text(s)
                .lines()
                .find(|l| l.starts_with("  subtotal "))
                .map(|l| l.split_whitespace().last().unwrap_or("").to_string())
        };
        assert_eq!(subtotal(&s).as_deref(), Some("1,234.50"));
        s.currency = "JPY".into();
        assert_eq!(subtotal(&s).as_deref(), Some("1,235"));
    }
}
