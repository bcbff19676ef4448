//! The billing math: a worked example computed by hand, allowance order, rounding, and
//! property tests for order independence and lines adding up.

use super::*;
use crate::domain::normalize::NormalizedCdr;
use crate::domain::rating::rate;
use crate::domain::rating::tests::{data, dec, shipped, sms, voice, FR, MA};
use proptest::prelude::*;
use std::collections::HashSet;

fn student() -> BillTo {
    BillTo {
        id: 7,
        name: "Amina El Fassi".into(),
        msisdn: "+212612345678".into(),
        plan: "student".into(),
        region: Some("Casablanca-Settat".into()),
        is_student: true,
        // Eight months of tenure at the end of November 2026: no loyalty discount.
        activated_on: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
    }
}

fn november() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
}

fn usage_of(plan: &str, events: &[NormalizedCdr]) -> Usage {
    let mut u = Usage::default();
    for e in events {
        let r = rate(shipped(), plan, e).expect("rated");
        u.add(1, &r);
    }
    u
}

fn line(inv: &Invoice, kind: LineKind) -> Vec<(&str, Decimal)> {
    inv.lines
        .iter()
        .filter(|l| l.kind == kind)
        .map(|l| (l.description.as_str(), l.amount))
        .collect()
}

#[test]
fn no_plan_fee_is_charged_for_a_month_that_ends_before_the_activation() {
    let customer = BillTo {
        activated_on: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        ..student()
    };
    let inv = invoice(shipped(), 1, &customer, november(), &Usage::default(), &[]).unwrap();
    assert!(line(&inv, LineKind::PlanFee).is_empty(), "{:?}", inv.lines);
}

#[test]
fn the_month_of_activation_is_charged_by_days_and_the_line_says_so() {
    // Activated on 19 November: 19..30 is 12 of 30 days, 49.00 × 12 / 30 = 19.60.
    let customer = BillTo {
        activated_on: NaiveDate::from_ymd_opt(2026, 11, 19).unwrap(),
        ..student()
    };
    let inv = invoice(shipped(), 1, &customer, november(), &Usage::default(), &[]).unwrap();
    assert_eq!(
        line(&inv, LineKind::PlanFee),
        vec![("Monthly fee, Student (12/30 days)", dec("19.60"))]
    );
    // The last day of a 31-day month: 49.00 / 31 = 1.5806… rounds half-up to 1.58.
    let december = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let customer = BillTo {
        activated_on: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
        ..student()
    };
    let inv = invoice(shipped(), 1, &customer, december, &Usage::default(), &[]).unwrap();
    assert_eq!(
        line(&inv, LineKind::PlanFee),
        vec![("Monthly fee, Student (1/31 days)", dec("1.58"))]
    );
}

#[test]
fn a_customer_activated_on_the_first_pays_the_whole_month() {
    let customer = BillTo {
        activated_on: november(),
        ..student()
    };
    let inv = invoice(shipped(), 1, &customer, november(), &Usage::default(), &[]).unwrap();
    assert_eq!(
        line(&inv, LineKind::PlanFee),
        vec![("Monthly fee, Student", dec("49.00"))]
    );
}

/// The student plan (catalog/default.toml): 49.00 a month, voice 30/30 with domestic
/// peak 0.60 and off-peak/weekend 0.30 a minute, Europe peak 4.00, domestic SMS 0.15,
/// Europe SMS 1.50, data 0.05 a MB; 60 domestic minutes and 2048 MB included; student
/// discount 10 %, regulatory fee 1.00, VAT 20 %. Times are UTC; Casablanca is UTC+1.
#[test]
fn a_students_month_is_invoiced_exactly_as_computed_by_hand() {
    let events = [
        // 1. Mon 10:00 local, 125 s domestic: 30/30 charges 150 s, peak: 2.5 min × 0.60 = 1.50
        voice("2026-11-02T09:00:00Z", 125, MA),
        // 2. Sat 15:00, 3600 s domestic, weekend: 60 min × 0.30 = 18.00
        voice("2026-11-07T14:00:00Z", 3600, MA),
        // 3. Mon 19:58, 300 s domestic, split at 20:00: peak 120 s = 1.20, off-peak
        //    180 s = 0.90; 2.10 in all
        voice("2026-11-02T18:58:00Z", 300, MA),
        // 4. Tue 11:00, 61 s to France: 30/30 charges 90 s, peak 1.5 × 4.00 = 6.00
        voice("2026-11-03T10:00:00Z", 61, FR),
        // 5. Domestic SMS 0.15; 6. SMS to France 1.50
        sms("2026-11-03T11:00:00Z", MA),
        sms("2026-11-03T11:05:00Z", FR),
        // 7. 3 GB: 3,145,728 KB = 3072 MB × 0.05 = 153.60
        data("2026-11-04T12:00:00Z", 3 * 1024 * 1024 * 1024),
    ];
    let usage = usage_of("student", &events);
    let inv = invoice(shipped(), 1, &student(), november(), &usage, &[]).unwrap();

    // Usage, per service: voice 1.50 + 18.00 + 2.10 + 6.00 = 27.60 over 150 + 3600 +
    // 300 + 90 = 4140 s = 69 min; SMS 0.15 + 1.50 = 1.65; data 153.60 for 3072 MB.
    assert_eq!(
        line(&inv, LineKind::Usage),
        vec![
            ("Voice calls (4)", dec("27.60")),
            ("SMS (2)", dec("1.65")),
            ("Mobile data (1 sessions)", dec("153.60")),
        ]
    );
    let quantities: Vec<Option<Decimal>> = inv
        .lines
        .iter()
        .filter(|l| l.kind == LineKind::Usage)
        .map(|l| l.quantity)
        .collect();
    assert_eq!(
        quantities,
        vec![Some(dec("69.00")), Some(dec("2.00")), Some(dec("3072.00"))]
    );
    assert_eq!(
        line(&inv, LineKind::PlanFee),
        vec![("Monthly fee, Student", dec("49.00"))]
    );
    // 60 domestic minutes = 3600 s, most expensive first: peak 150 + 120 = 270 s (1.50 +
    // 1.20 = 2.70), then the 0.30 buckets in key order: off-peak 180 s (0.90), weekend
    // 3150 of its 3600 s (3150 / 60 × 0.30 = 15.75): 2.70 + 0.90 + 15.75 = 19.35. The
    // call to France is not domestic and stays billed.
    // 2048 MB of the 3072: 2048 × 0.05 = 102.40.
    assert_eq!(
        line(&inv, LineKind::Allowance),
        vec![
            ("Included 60 min voice (domestic): 60 used", dec("-19.35")),
            (
                "Included 2048 MB data (domestic): 2048 used",
                dec("-102.40")
            ),
        ]
    );
    // Discount base: 27.60 + 1.65 + 153.60 + 49.00 − 19.35 − 102.40 = 110.10; 10 % = 11.01.
    assert_eq!(
        line(&inv, LineKind::Discount),
        vec![("Student discount 10%", dec("-11.01"))]
    );
    assert_eq!(
        line(&inv, LineKind::RegulatoryFee),
        vec![("Regulatory fee", dec("1.00"))]
    );
    // Subtotal 110.10 − 11.01 + 1.00 = 100.09; VAT 20 % = 20.018 → 20.02; total 120.11.
    assert_eq!(inv.subtotal, dec("100.09"));
    assert_eq!(inv.vat, dec("20.02"));
    assert_eq!(inv.total, dec("120.11"));
    assert_eq!(inv.subtotal.to_string(), "100.09");
    assert_eq!(inv.allowances[0].left, dec("0.00"));
    assert_eq!(inv.allowances[1].left, dec("0.00"));
    assert_eq!(inv.allowances[1].used, dec("2048.00"));
}

#[test]
fn a_customer_without_usage_gets_the_fee_only_invoice() {
    let mut basic = student();
    basic.plan = "basic".into();
    basic.is_student = false;
    let inv = invoice(shipped(), 1, &basic, november(), &Usage::default(), &[]).unwrap();
    // basic has no monthly fee: the regulatory fee 1.00 and its VAT 0.20.
    assert_eq!(
        line(&inv, LineKind::RegulatoryFee),
        vec![("Regulatory fee", dec("1.00"))]
    );
    assert_eq!(inv.lines.len(), 1);
    assert_eq!(
        (inv.subtotal, inv.vat, inv.total),
        (dec("1.00"), dec("0.20"), dec("1.20"))
    );
}

#[test]
fn loyalty_counts_tenure_at_the_end_of_the_period() {
    // 12 months after 2025-11-30 is 2026-11-30, the last day of November: loyal.
    assert!(loyal(
        NaiveDate::from_ymd_opt(2025, 11, 30).unwrap(),
        12,
        november()
    ));
    assert!(!loyal(
        NaiveDate::from_ymd_opt(2025, 12, 1).unwrap(),
        12,
        november()
    ));
}

#[test]
fn late_usage_is_a_dated_line_neither_discounted_nor_covered() {
    let a = Adjustment {
        kind: AdjustmentKind::Late,
        date: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
        events: 2,
        amount: dec("3.125"),
    };
    let inv = invoice(
        shipped(),
        1,
        &student(),
        november(),
        &Usage::default(),
        &[a],
    )
    .unwrap();
    // 49.00 fee − 4.90 student discount (on the fee only) + 3.13 late + 1.00 = 48.23.
    assert_eq!(
        line(&inv, LineKind::Adjustment),
        vec![("Late usage of 2026-10-31 (2 events)", dec("3.13"))]
    );
    assert_eq!(
        line(&inv, LineKind::Discount),
        vec![("Student discount 10%", dec("-4.90"))]
    );
    assert_eq!(inv.subtotal, dec("48.23"));
    let adjustment = inv
        .lines
        .iter()
        .find(|l| l.kind == LineKind::Adjustment)
        .unwrap();
    assert_eq!(adjustment.date, NaiveDate::from_ymd_opt(2026, 10, 31));
}

#[test]
fn an_allowance_covers_the_most_expensive_units_first() {
    // basic: the first 100 domestic SMS are free; all SMS cost the same, so build two
    // buckets by hand at different prices to see the order.
    let mut u = Usage::default();
    for (band, price, units) in [("offpeak", "0.10", 80_i64), ("peak", "0.20", 50)] {
        u.add_bucket(
            BucketKey {
                tariff_id: "basic/sms/domestic".into(),
                band: band.into(),
                catalog_version: 1,
            },
            Bucket {
                service: RecordType::Sms,
                zone: "domestic".into(),
                price: dec(price),
                units,
                events: units,
                amount: dec(price) * Decimal::from(units),
                extra: Decimal::ZERO,
                cost: Decimal::ZERO,
            },
        );
    }
    let plan = shipped().plan("basic").unwrap();
    let used = allowances(shipped(), plan, &u);
    // 50 peak SMS (10.00) first, then 50 of the 80 off-peak (5.00).
    assert_eq!(used[0].credit, dec("15.000000"));
    assert_eq!(used[0].used, dec("100.00"));
}

#[test]
fn thresholds_are_reached_once_each() {
    assert_eq!(
        thresholds_reached(dec("79.99"), dec("100"), &[]),
        Vec::<i16>::new()
    );
    assert_eq!(thresholds_reached(dec("80.00"), dec("100"), &[]), vec![80]);
    assert_eq!(thresholds_reached(dec("120"), dec("100"), &[80]), vec![100]);
    assert_eq!(
        thresholds_reached(dec("120"), dec("100"), &[80, 100]),
        Vec::<i16>::new()
    );
    assert_eq!(
        thresholds_reached(dec("120"), Decimal::ZERO, &[]),
        Vec::<i16>::new()
    );
}

#[test]
fn periods_are_parsed_from_year_and_month() {
    assert_eq!(parse_period("2026-11"), Some(november()));
    assert_eq!(parse_period("2026-13"), None);
    assert_eq!(parse_period("26-11"), None);
    assert_eq!(
        period_end(november()),
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
    );
}

// ---------------------------------------------------------------------------------------
// Properties.

/// A random event of November 2026 for the subscriber of the rating tests.
fn any_event() -> impl Strategy<Value = NormalizedCdr> {
    let minute = 0..(29 * 24 * 60_i64);
    (0..3_u8, minute, 0..4000_i32, 0..3_u8, 0..50_000_000_i64).prop_map(
        |(kind, minute, secs, peer, bytes)| {
            let at = (chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").unwrap()
                + chrono::Duration::minutes(minute))
            .with_timezone(&Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let peer = [MA, FR, "+213551234567"][peer as usize];
            match kind {
                0 => voice(&at, secs, peer),
                1 => sms(&at, peer),
                _ => data(&at, bytes),
            }
        },
    )
}

fn document_of(inv: &Invoice) -> String {
    serde_json::to_string_pretty(inv).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any permutation, any split into batches and any duplication of the events give the
    /// same invoice JSON, byte for byte; its lines add up to the subtotal and the
    /// subtotal and VAT to the total.
    #[test]
    fn the_invoice_does_not_depend_on_order_batches_or_duplicates(
        events in prop::collection::vec(any_event(), 0..40),
        plan in prop::sample::select(vec!["basic", "student", "business", "data-max"]),
        seed in any::<u64>(),
        cuts in prop::collection::vec(0..60_usize, 0..6),
        dups in prop::collection::vec(0..60_usize, 0..10),
    ) {
        let mut customer = student();
        customer.plan = plan.to_string();
        // Two random events can share a record id (same kind, same minute): the store
        // keeps the first, so the reference is the events with distinct ids.
        let mut first = HashSet::new();
        let events: Vec<NormalizedCdr> = events
            .into_iter()
            .filter(|e| first.insert(e.record_id.clone()))
            .collect();
        let reference = usage_of(plan, &events);
        let expected = document_of(&invoice(shipped(), 1, &customer, november(), &reference, &[]).unwrap());

        // Shuffle (a seeded Fisher–Yates), duplicate some, split into batches; each batch
        // keeps only records not seen before, as the batch write does by record id.
        let mut arrival: Vec<NormalizedCdr> = events.clone();
        for &d in &dups {
            if !events.is_empty() {
                arrival.push(events[d % events.len()].clone());
            }
        }
        let mut state = seed | 1;
        for i in (1..arrival.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            arrival.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (arrival.len() + 1)).collect();
        bounds.push(0);
        bounds.push(arrival.len());
        bounds.sort_unstable();
        let mut seen = HashSet::new();
        let mut total = Usage::default();
        for w in bounds.windows(2) {
            let fresh: Vec<NormalizedCdr> = arrival[w[0]..w[1]]
                .iter()
                .filter(|e| seen.insert(e.record_id.clone()))
                .cloned()
                .collect();
            total.merge(usage_of(plan, &fresh));
        }
        let inv = invoice(shipped(), 1, &customer, november(), &total, &[]).unwrap();
        prop_assert_eq!(document_of(&inv), expected);
        prop_assert!(total_ceiling(shipped(), &customer, &total, &[]) >= inv.total);
        let sum: Decimal = inv.lines.iter().map(|l| l.amount).sum();
        prop_assert_eq!(sum, inv.subtotal);
        prop_assert_eq!(inv.subtotal + inv.vat, inv.total);
        for l in &inv.lines {
            prop_assert_eq!(l.amount.scale(), 2);
        }
    }

    /// Allowance credits never exceed what the covered buckets cost, and never cover
    /// more units than granted.
    #[test]
    fn allowances_never_credit_more_than_usage(
        events in prop::collection::vec(any_event(), 0..60),
        plan in prop::sample::select(vec!["basic", "student", "business", "data-max"]),
    ) {
        let usage = usage_of(plan, &events);
        let p = shipped().plan(plan).unwrap();
        let used = allowances(shipped(), p, &usage);
        let credited: Decimal = used.iter().map(|a| a.credit).sum();
        let coverable: Decimal = usage.buckets.values().map(|b| b.amount).sum();
        prop_assert!(credited <= coverable);
        for a in &used {
            prop_assert!(a.used <= a.granted);
            prop_assert!(a.credit >= Decimal::ZERO);
        }
    }
}
