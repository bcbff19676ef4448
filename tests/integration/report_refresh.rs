//! The report aggregates are recomputed per period: a refresh recomputes only the months
//! and processing days whose rows changed (usage, re-rating, invoices, customers, the
//! audit trail), and gives exactly what recomputing everything gives. A database filled
//! before the aggregates were tables keeps its reports through the migration.
//!
//! The data set is the one of `reports.rs` (June to September 2026, Africa/Casablanca).

use crate::helpers::*;
use crate::reports::{DATA, TZ};
use cdrflow::storage::reports::{refresh, Refreshed};
use chrono::NaiveDate;
use tokio_postgres::Client;

/// Every report aggregate table.
pub const AGGREGATES: [&str; 8] = [
    "report_customer_usage_agg",
    "report_segment_agg",
    "report_zone_agg",
    "report_hourly_agg",
    "report_billed_agg",
    "report_quality_agg",
    "report_rejects_agg",
    "report_rfm_agg",
];

/// A database of its own holding the data set, not refreshed yet.
async fn loaded() -> (TestDb, Client) {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(DATA)
        .await
        .expect("insert the data set");
    (db, client)
}

/// Every row of every aggregate, as text, in order.
async fn snapshot(client: &Client, tables: &[String]) -> Vec<(String, Vec<String>)> {
    let mut all = Vec::new();
    for table in tables {
        let rows = client
            .query(&format!("SELECT t::text FROM {table} t ORDER BY 1"), &[])
            .await
            .unwrap_or_else(|e| panic!("read {table}: {e}"));
        all.push((table.clone(), rows.iter().map(|r| r.get(0)).collect()));
    }
    all
}

/// The revenue_by_month report, unfiltered, as text rows.
async fn revenue_by_month(client: &Client) -> Vec<String> {
    client
        .query("SELECT t::text FROM report_revenue_by_month t", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn aggregates() -> Vec<String> {
    AGGREGATES.iter().map(|t| t.to_string()).collect()
}

fn months(list: &[&str]) -> Vec<NaiveDate> {
    list.iter()
        .map(|m| NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").unwrap())
        .collect()
}

/// One change to the stored rows, the periods and processing days a refresh must
/// recompute after it.
struct Step {
    what: &'static str,
    sql: &'static str,
    periods: &'static [&'static str],
    days: i32,
}

const STEPS: &[Step] = &[
    Step {
        what: "new usage in September and in a new month, October",
        sql: "INSERT INTO usage_events (record_id, customer_id, msisdn, record_type, event_time,
                  period, zone, band, units, amount, cost, technology, region, city, cell_id,
                  peer_msisdn, peer_country, peer_class, duration_sec, plan, tariff_id,
                  catalog_version, src_topic, src_partition, src_offset, ingested_at)
              SELECT 'rr-' || v.n, c.customer_id, c.msisdn, 'voice', v.at::timestamptz,
                     v.period::date, 'domestic', 'peak', 60, v.amount::numeric, 0.12, '4G',
                     c.region, 'Casablanca', 'cell-rr-' || v.n, '+212611111111', 'MA',
                     'domestic', 60, c.plan, c.plan || '/voice/domestic',
                     (SELECT max(version) FROM catalog_versions), 'cdr.raw', 2, v.n, now()
                FROM (VALUES (1, 3, '2026-09-29 10:00Z', '2026-09-01', '1.00'),
                             (2, 8, '2026-10-06 10:00Z', '2026-10-01', '2.50'))
                     AS v (n, cust, at, period, amount)
                JOIN customers c ON c.customer_id = v.cust",
        periods: &["2026-09", "2026-10"],
        days: 0,
    },
    Step {
        what: "an August event priced again",
        sql: "UPDATE usage_events SET amount = amount + 1, cost = cost + 0.5
               WHERE record_id = 'rpt-17'",
        periods: &["2026-08"],
        days: 0,
    },
    Step {
        what: "September invoiced for one customer",
        sql: "INSERT INTO invoices (number, seq, customer_id, period, catalog_version, currency,
                                   subtotal, vat, total, document)
              VALUES ('INV-000006', 6, 1, '2026-09-01', (SELECT max(version) FROM catalog_versions),
                      'MAD', 16.60, 3.32, 19.92, '{}');
              INSERT INTO invoice_lines (number, line_no, kind, service, description, amount)
              VALUES ('INV-000006', 1, 'usage', 'voice', 'Voice calls (1)', 6.40),
                     ('INV-000006', 2, 'usage', 'data', 'Mobile data (1 sessions)', 10.00),
                     ('INV-000006', 3, 'usage', 'sms', 'SMS (1)', 0.20)",
        periods: &["2026-09"],
        days: 0,
    },
    Step {
        what: "a customer moves to another region",
        sql: "UPDATE customers SET region = 'Oriental' WHERE customer_id = 6",
        periods: &["2026-06", "2026-08"],
        days: 0,
    },
    Step {
        what: "a name changes, which no aggregate holds",
        sql: "UPDATE customers SET name = 'Hamid Haddad-Alami' WHERE customer_id = 6",
        periods: &[],
        days: 0,
    },
    Step {
        what: "a customer activated in July, without usage, joins the RFM ranks from July",
        sql: "INSERT INTO customers (customer_id, msisdn, name, region, plan, activated_on)
              VALUES (9, '+212600000009', 'Jamal Jabri', 'Oriental', 'basic', '2026-07-15')",
        periods: &["2026-07", "2026-08", "2026-09", "2026-10"],
        days: 0,
    },
    Step {
        what: "an earlier activation day",
        sql: "UPDATE customers SET activated_on = '2026-06-10' WHERE customer_id = 3",
        periods: &["2026-06", "2026-07", "2026-08", "2026-09", "2026-10"],
        days: 0,
    },
    Step {
        what: "a batch and a reject on a new day, and a reject of 10 September deleted",
        sql: "INSERT INTO committed_batches (group_id, topic, partition, from_offset, to_offset,
                  records, accepted, unverified_peers, duplicates, suspense, rejected, committed_at)
              VALUES ('cdrflow', 'cdr.raw', 2, 0, 9, 10, 9, 0, 0, 0, 1, '2026-10-02 09:00Z');
              INSERT INTO rejected_records (src_topic, src_partition, src_offset, reason, detail,
                                            raw, rejected_at)
              VALUES ('cdr.raw', 2, 4, 'invalid_json', 'expected value', '\\x7b', '2026-10-02 09:00Z');
              DELETE FROM rejected_records WHERE src_partition = 0 AND src_offset = 61",
        periods: &[],
        days: 2,
    },
    Step {
        what: "a June event deleted",
        sql: "DELETE FROM usage_events WHERE record_id = 'rpt-02'",
        periods: &["2026-06"],
        days: 0,
    },
];

#[tokio::test]
async fn a_refresh_recomputes_the_changed_periods_only_and_equals_a_full_recomputation() {
    let (_db, client) = loaded().await; // dropped at the end: the database goes with it
    let tables = aggregates();

    // The first refresh recomputes everything; the next, with nothing changed, nothing.
    let first = refresh(&client, TZ, false).await.unwrap();
    assert!(first.whole, "{first:?}");
    assert_eq!(
        first.periods,
        months(&["2026-06", "2026-07", "2026-08", "2026-09"])
    );
    // 20 August, 1 September (31 August 23:15 UTC), 10 and 11 September.
    assert_eq!(first.days, 4, "{first:?}");
    let idle = refresh(&client, TZ, false).await.unwrap();
    assert_eq!(
        (idle.whole, idle.periods.as_slice(), idle.days),
        (false, &[][..], 0),
        "{idle:?}"
    );

    let mut before = snapshot(&client, &tables).await;
    for step in STEPS {
        client
            .batch_execute(step.sql)
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", step.what));
        let done: Refreshed = refresh(&client, TZ, false).await.unwrap();
        assert!(!done.whole, "{}: {done:?}", step.what);
        assert_eq!(done.periods, months(step.periods), "{}", step.what);
        assert_eq!(done.days, step.days, "{}: {done:?}", step.what);
        let incremental = snapshot(&client, &tables).await;
        if !step.periods.is_empty() || step.days > 0 {
            assert_ne!(
                incremental, before,
                "{}: the aggregates did not move",
                step.what
            );
        }

        let full = refresh(&client, TZ, true).await.unwrap();
        assert!(full.whole);
        let recomputed = snapshot(&client, &tables).await;
        for ((table, got), (_, want)) in incremental.iter().zip(&recomputed) {
            assert_eq!(
                got, want,
                "{}: {table} differs from a full recomputation",
                step.what
            );
        }
        before = recomputed;
    }

    // The reports read the aggregates: October's usage shows.
    let october: String = client
        .query_one(
            "SELECT rated::text FROM report_revenue_by_month('2026-10-01', NULL, NULL, NULL, NULL)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(october, "2.500000");

    // Another time zone moves hours and days: everything is recomputed, and again on the
    // way back, which gives the same rows as before.
    let utc = refresh(&client, "UTC", false).await.unwrap();
    assert!(utc.whole, "{utc:?}");
    assert_ne!(snapshot(&client, &tables).await, before);
    let back = refresh(&client, TZ, false).await.unwrap();
    assert!(back.whole, "{back:?}");
    assert_eq!(snapshot(&client, &tables).await, before);
}

/// Marks made by a transaction that has not committed when a refresh runs stay for the
/// next refresh: nothing is lost between the two.
#[tokio::test]
async fn a_change_committed_during_a_refresh_is_recomputed_by_the_next_one() {
    let (db, client) = loaded().await;
    refresh(&client, TZ, false).await.unwrap();

    let mut writer = db.client().await;
    let tx = writer.transaction().await.unwrap();
    tx.batch_execute("UPDATE usage_events SET amount = amount + 10 WHERE record_id = 'rpt-21'")
        .await
        .unwrap();
    // Not committed yet: this refresh cannot see the change, nor its mark.
    let during = refresh(&client, TZ, false).await.unwrap();
    assert!(during.periods.is_empty(), "{during:?}");
    tx.commit().await.unwrap();

    let after = refresh(&client, TZ, false).await.unwrap();
    assert_eq!(after.periods, months(&["2026-09"]));
    let rated: String = client
        .query_one(
            "SELECT rated::text FROM report_customer_usage_agg
              WHERE period = '2026-09-01' AND customer_id = 1 AND service = 'voice'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rated, "16.400000");
}

/// A database whose reports were materialized views (migration 12) keeps their rows and
/// answers through the migration, and its first refresh recomputes every period.
#[tokio::test]
async fn a_database_with_materialized_views_migrates_to_the_aggregate_tables_in_place() {
    let db = TestDb::at_migration(12).await;
    let mut client = db.client().await;
    cdrflow::storage::catalog::apply(&mut client, DEFAULT_CATALOG)
        .await
        .expect("apply the shipped catalog");
    client
        .batch_execute(DATA)
        .await
        .expect("insert the data set");
    client
        .execute("SELECT report_refresh($1)", &[&TZ])
        .await
        .expect("refresh the materialized views");
    let views: Vec<String> = AGGREGATES
        .iter()
        .map(|t| t.replace("_agg", "_mv"))
        .collect();
    let old = snapshot(&client, &views).await;
    let old_answer = revenue_by_month(&client).await;
    assert_eq!(old_answer.len(), 4, "{old_answer:?}");

    cdrflow::storage::migrate(&db.url)
        .await
        .expect("migrate in place");
    let client = db.client().await;
    let copied = snapshot(&client, &aggregates()).await;
    for ((table, got), (_, want)) in copied.iter().zip(&old) {
        assert_eq!(got, want, "{table} after the migration");
    }
    assert_eq!(revenue_by_month(&client).await, old_answer);

    // The views' last refresh may be older than the rows: every period is recomputed.
    let first = refresh(&client, TZ, false).await.unwrap();
    assert_eq!(
        first.periods,
        months(&["2026-06", "2026-07", "2026-08", "2026-09"])
    );
    assert_eq!(first.days, 4, "{first:?}");
    assert_eq!(snapshot(&client, &aggregates()).await, copied);
    assert_eq!(revenue_by_month(&client).await, old_answer);
}

/// `cdrflow report --refresh` says what it recomputed; `--full` recomputes everything and
/// needs `--refresh`.
#[tokio::test]
async fn report_refresh_on_the_command_line_says_what_it_recomputed() {
    let (db, client) = loaded().await;
    refresh(&client, TZ, false).await.unwrap();
    client
        .batch_execute("UPDATE usage_events SET amount = amount + 1 WHERE record_id = 'rpt-05'")
        .await
        .unwrap();

    let (code, _, err) = cdrflow(&["report", "--refresh", "--database-url", &db.url]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("Report aggregates refreshed in ")
            && err.contains(" s: period 2026-06, 0 processing days."),
        "{err}"
    );
    let (code, _, err) = cdrflow(&["report", "--refresh", "--full", "--database-url", &db.url]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            " s: everything, periods 2026-06, 2026-07, 2026-08, 2026-09, 4 processing days."
        ),
        "{err}"
    );
    let (code, _, err) = cdrflow(&["report", "kpis", "--full", "--database-url", &db.url]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--refresh"), "{err}");
}
