//! Usage is partitioned by month, and a record is stored once whatever month it claims:
//! the ledger of record ids refuses the second copy. A month without its partition yet
//! waits in the default partition and moves into its own when it is made. A database
//! filled before the partitions migrates in place.

use crate::helpers::*;
use crate::reports::{DATA, TZ};
use chrono::{Datelike, Duration as Days, NaiveDate, Utc};
use std::time::Duration;
use tokio_postgres::Client;

fn voice(record_id: &str, timestamp: &str) -> Vec<u8> {
    format!(
        r#"{{"record_id":"{record_id}","record_type":"voice","timestamp":"{timestamp}","caller_id":"0612345678","callee_id":"0698765432","duration_sec":30,"cell_id":"RABAT_1","technology":"4G"}}"#
    )
    .into_bytes()
}

/// The partition each stored record lies in, by record id.
async fn placement(client: &Client) -> Vec<(String, String)> {
    client
        .query(
            "SELECT record_id, tableoid::regclass::text FROM usage_events ORDER BY record_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Every usage row, as text, by record id.
async fn rows(client: &Client) -> Vec<String> {
    text_rows(
        client,
        "SELECT t::text FROM usage_events t ORDER BY record_id",
    )
    .await
}

/// The revenue_by_month report, unfiltered.
async fn report(client: &Client) -> Vec<String> {
    text_rows(client, "SELECT t::text FROM report_revenue_by_month t").await
}

async fn text_rows(client: &Client, query: &str) -> Vec<String> {
    client
        .query(query, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn partition_of(day: NaiveDate) -> String {
    format!("usage_events_{}", day.format("%Y_%m"))
}

/// A switch that sends one call twice, the second time with another date (a clock
/// corrected between the two): the second copy claims another month, so another
/// partition, and is a duplicate all the same.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_is_stored_once_even_when_its_copies_claim_different_months() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.once", 1).await;
    let customer = cdrflow::generator::Customer::on_plan(
        "+212612345678",
        "Test",
        "basic",
        NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
    );
    cdrflow::storage::customers::upsert(
        &db.client().await,
        &[customer],
        cdrflow::storage::customers::OnExisting::Keep,
    )
    .await
    .unwrap();
    // 35 days apart: always two different months.
    let now = Utc::now();
    let at = |days: i64| {
        (now - Days::days(days))
            .format("%Y-%m-%dT12:00:00Z")
            .to_string()
    };
    let key = Some(&b"212612345678"[..]);
    produce_raw(
        &topic,
        0,
        &[
            (key, voice("SW1-000001", &at(10))),
            (key, voice("SW1-000001", &at(45))),
            (key, voice("SW1-000002", &at(45))),
        ],
    );
    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "once",
        database_url: &db.url,
        idle_secs: Some(3),
        extra: vec![],
    });
    assert!(
        daemon.wait(Duration::from_secs(120)).success(),
        "{}",
        daemon.log_text()
    );

    let client = db.client().await;
    let stored = placement(&client).await;
    let ids: Vec<&str> = stored.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["SW1-000001", "SW1-000002"], "{stored:?}");
    assert_ne!(
        stored[0].1, stored[1].1,
        "two months, two partitions: {stored:?}"
    );
    assert!(
        stored.iter().all(|(_, p)| p != "usage_events_default"),
        "the daemon's months have their partitions: {stored:?}"
    );
    let ledger: i64 = client
        .query_one("SELECT count(*) FROM usage_ids", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ledger, 2);
    let s = stats(&db.url, "once");
    assert_eq!(s["totals"]["accepted"], 2, "{s}");
    assert_eq!(s["totals"]["duplicates"], 1, "{s}");
    assert_eq!(s["balanced"], true);
}

/// `migrate` makes the partitions of this month and the next two; usage of a month
/// without one is kept in the default partition until usage_partition() makes it, and
/// the ledger refuses a stored id whatever the statement that brings it.
#[tokio::test]
async fn a_month_without_its_partition_waits_in_the_default_one_and_moves_when_it_is_made() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let today = Utc::now().date_naive().with_day(1).unwrap();
    for ahead in 0..3 {
        let month = today + chrono::Months::new(ahead);
        let exists: bool = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&partition_of(month)],
            )
            .await
            .unwrap()
            .get(0);
        assert!(exists, "{} made by migrate", partition_of(month));
    }

    client
        .batch_execute(DATA)
        .await
        .expect("insert the data set");
    let stored = placement(&client).await;
    assert_eq!(stored.len(), 27);
    assert!(
        stored.iter().all(|(_, p)| p == "usage_events_default"),
        "June to September 2026 had no partition: {stored:?}"
    );
    client
        .batch_execute("DELETE FROM report_dirty_periods")
        .await
        .unwrap();

    let made: bool = client
        .query_one("SELECT usage_partition('2026-07-20')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(made);
    let again: bool = client
        .query_one("SELECT usage_partition('2026-07-01')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!again, "made once");
    let moved: Vec<String> = placement(&client)
        .await
        .into_iter()
        .filter(|(_, p)| p == "usage_events_2026_07")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        moved,
        ["rpt-07", "rpt-08", "rpt-09", "rpt-10", "rpt-11", "rpt-12", "rpt-13"]
    );
    let marks: i64 = client
        .query_one("SELECT count(*) FROM report_dirty_periods", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(marks, 0, "moving rows changes no report");

    // The same id in another month, by plain SQL: refused by the ledger.
    let err = client
        .batch_execute(
            "INSERT INTO usage_events (record_id, customer_id, record_type, msisdn, event_time,
                    cell_id, region, technology, src_topic, src_partition, src_offset, period)
             SELECT record_id, customer_id, record_type, msisdn, event_time, cell_id, region,
                    technology, src_topic, src_partition, src_offset + 1000, '2026-09-01'
               FROM usage_events WHERE record_id = 'rpt-08'",
        )
        .await
        .expect_err("a second copy of rpt-08");
    let db_error = err.as_db_error().expect("a database error");
    assert_eq!(db_error.constraint(), Some("usage_ids_pkey"), "{err}");

    // A deleted row frees its id.
    client
        .batch_execute("DELETE FROM usage_events WHERE record_id = 'rpt-08'")
        .await
        .unwrap();
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM usage_ids WHERE record_id = 'rpt-08'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

/// A database filled before usage was partitioned keeps every row, each in its month's
/// partition (rows without a period in the default one), with the ledger filled, and its
/// reports give the same rows.
#[tokio::test]
async fn a_database_filled_before_the_partitions_migrates_in_place() {
    let db = TestDb::at_migration(13).await;
    let mut client = db.client().await;
    cdrflow::storage::catalog::apply(&mut client, DEFAULT_CATALOG)
        .await
        .expect("apply the shipped catalog");
    client
        .batch_execute(DATA)
        .await
        .expect("insert the data set");
    cdrflow::storage::reports::refresh(&client, TZ, false)
        .await
        .unwrap();
    let before = rows(&client).await;
    let answer = report(&client).await;
    assert_eq!(before.len(), 27);

    cdrflow::storage::migrate(&db.url)
        .await
        .expect("migrate in place");
    let client = db.client().await;
    assert_eq!(rows(&client).await, before, "every row as it was");
    let stored = placement(&client).await;
    let by_partition = |p: &str| stored.iter().filter(|(_, q)| q == p).count();
    assert_eq!(by_partition("usage_events_2026_06"), 6);
    assert_eq!(by_partition("usage_events_2026_07"), 7);
    assert_eq!(by_partition("usage_events_2026_08"), 6);
    assert_eq!(by_partition("usage_events_2026_09"), 7);
    assert_eq!(
        by_partition("usage_events_default"),
        1,
        "rpt-27 has no period"
    );
    let ledger: i64 = client
        .query_one("SELECT count(*) FROM usage_ids", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ledger, 27);

    let full = cdrflow::storage::reports::refresh(&client, TZ, true)
        .await
        .unwrap();
    assert_eq!(full.periods.len(), 4, "{full:?}");
    assert_eq!(report(&client).await, answer);
    let totals: String = client
        .query_one(
            "SELECT string_agg(t::text, ';' ORDER BY customer_id, period) FROM customer_period_totals t",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        totals.contains("(5,2026-07-01,3,"),
        "the view reads the new table: {totals}"
    );
}

/// The bare bulk insert `bench.sh` measures writes the way the committers do: a backlog
/// of months that have no partition yet gets them.
#[tokio::test]
async fn the_bare_insert_benchmark_stores_months_without_partitions_in_their_own() {
    let db = TestDb::new().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cdrflow-bench"))
        .args([
            "insert",
            "--database-url",
            &db.url,
            "--count",
            "2000",
            "--seed",
            "7",
            "--customers",
            "100",
            "--start",
            "2026-09-01",
            "--days",
            "10",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = db.client().await;
    let stored = placement(&client).await;
    assert!(stored.len() > 1000, "{} rows", stored.len());
    // The generator's anomalies date a few records a little earlier: August.
    let in_september = stored
        .iter()
        .filter(|(_, p)| p == "usage_events_2026_09")
        .count();
    assert!(
        in_september * 10 > stored.len() * 9,
        "{in_september} of {}",
        stored.len()
    );
    assert!(
        stored.iter().all(|(_, p)| p != "usage_events_default"),
        "{:?}",
        stored.iter().find(|(_, p)| p == "usage_events_default")
    );
    let ledger: i64 = client
        .query_one("SELECT count(*) FROM usage_ids", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ledger as usize, stored.len());
}
