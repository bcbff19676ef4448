//! `cdrflow retention`: the billed months before the kept ones are archived (gzip CSV and
//! a manifest, read back before anything is dropped) and dropped; a month not billed
//! stays and is named; the report aggregates keep the dropped months' rows, also through
//! a full recomputation.
//!
//! The data set is the one of `reports.rs` (June to September 2026, Africa/Casablanca).

use crate::helpers::*;
use crate::report_refresh::AGGREGATES;
use crate::reports::{DATA, TZ};
use cdrflow::storage::retention::{self, Manifest};
use chrono::{Datelike, NaiveDate, Utc};
use std::io::Read;
use tokio_postgres::Client;

async fn aggregates(client: &Client) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for table in AGGREGATES {
        let rows = client
            .query(&format!("SELECT t::text FROM {table} t ORDER BY 1"), &[])
            .await
            .unwrap();
        all.push(rows.iter().map(|r| r.get(0)).collect());
    }
    all
}

async fn count(client: &Client, query: &str) -> i64 {
    client.query_one(query, &[]).await.unwrap().get(0)
}

/// Months from September 2026 to now: kept with September the oldest.
fn keep_from_september() -> String {
    let today = Utc::now().date_naive();
    (today.year() * 12 + today.month() as i32 - (2026 * 12 + 9)).to_string()
}

fn gunzip(path: &std::path::Path) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[tokio::test]
async fn retention_archives_the_billed_months_before_the_kept_ones_and_drops_them() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(DATA)
        .await
        .expect("insert the data set");
    // June and July are billed, August not. A reject of June, and one of 30 June 23:30
    // UTC: already 1 July in Casablanca.
    client
        .batch_execute(
            "SELECT usage_partition(p) FROM unnest('{2026-06-01,2026-07-01,2026-08-01,2026-09-01}'::date[]) p;
             INSERT INTO billing_periods (period, closed_at) VALUES
                 ('2026-06-01', '2026-07-03'), ('2026-07-01', '2026-08-03'), ('2026-08-01', NULL);
             INSERT INTO rejected_records (src_topic, src_partition, src_offset, reason, detail,
                                          raw, rejected_at) VALUES
                 ('cdr.raw', 2, 1, 'invalid_json', 'not JSON', '\\x6e6f', '2026-06-15 10:00Z'),
                 ('cdr.raw', 2, 2, 'invalid_json', 'not JSON', '\\x6e6f', '2026-06-30 23:30Z');",
        )
        .await
        .expect("bill and reject");
    cdrflow::storage::reports::refresh(&client, TZ, false)
        .await
        .unwrap();
    let reports_before = aggregates(&client).await;
    let keep = keep_from_september();
    let url = db.url.as_str();

    // What would go, and nothing goes.
    let (code, out, err) = cdrflow(&[
        "retention",
        "--keep-months",
        &keep,
        "--dry-run",
        "--database-url",
        url,
    ]);
    assert_eq!(code, 1, "August is not billed: {out}{err}");
    assert!(
        out.contains("keeping 2026-09 and later; older months: 3"),
        "{out}"
    );
    assert!(
        out.contains("2026-06  6 usage rows, 1 rejects  would go"),
        "{out}"
    );
    assert!(
        out.contains("2026-07  7 usage rows, 1 rejects  would go"),
        "{out}"
    );
    assert!(
        out.contains("2026-08  6 usage rows, 1 rejects  stays: not billed"),
        "{out}"
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM usage_events").await,
        27
    );

    // Dropping without a copy must be asked for by name.
    let (code, _, err) = cdrflow(&["retention", "--keep-months", &keep, "--database-url", url]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--archive"), "{err}");

    let dir = tempdir();
    let archive = dir.join("archive");
    let (code, out, err) = cdrflow(&[
        "retention",
        "--keep-months",
        &keep,
        "--archive",
        archive.to_str().unwrap(),
        "--database-url",
        url,
    ]);
    assert_eq!(code, 1, "August stays: {out}{err}");
    assert!(
        out.contains("2026-06  6 usage rows, 1 rejects  archived ("),
        "{out}"
    );
    assert!(
        out.contains("2026-07  7 usage rows, 1 rejects  archived ("),
        "{out}"
    );

    // The archive: every row, checksums that hold.
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(archive.join("2026-06.manifest.json")).expect("June's manifest"),
    )
    .unwrap();
    assert_eq!(manifest.period, "2026-06");
    assert_eq!(manifest.timezone, TZ);
    let rows: Vec<(&str, i64)> = manifest
        .tables
        .iter()
        .map(|t| (t.table.as_str(), t.rows))
        .collect();
    assert_eq!(rows, [("usage_events", 6), ("rejected_records", 1)]);
    let june = gunzip(&archive.join("usage_events-2026-06.csv.gz"));
    let mut reader = csv::Reader::from_reader(june.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let id = headers.iter().position(|h| h == "record_id").unwrap();
    let amount = headers.iter().position(|h| h == "amount").unwrap();
    let records: Vec<(String, String)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[id].to_string(), r[amount].to_string())
        })
        .collect();
    assert_eq!(records.len(), 6);
    assert_eq!(records[0], ("rpt-01".to_string(), "2.800000".to_string()));
    assert_eq!(records[5].0, "rpt-06");
    let july_rejects = gunzip(&archive.join("rejected_records-2026-07.csv.gz"));
    assert!(
        july_rejects.contains("2026-06-30 23:30:00+00"),
        "{july_rejects}"
    );
    for table in &manifest.tables {
        assert_eq!(
            retention::verify(
                NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
                &archive,
                table
            )
            .unwrap(),
            table.sha256
        );
    }
    // A damaged file does not verify.
    let file = archive.join(&manifest.tables[0].file);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    assert!(retention::verify(
        NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
        &archive,
        &manifest.tables[0]
    )
    .is_err());

    // Gone from the database: partitions, ids, rejects; August and September stay.
    assert_eq!(
        count(&client, "SELECT count(*) FROM usage_events").await,
        27 - 13
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM pg_class WHERE relname IN ('usage_events_2026_06', 'usage_events_2026_07')").await,
        0
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM usage_ids WHERE period < '2026-08-01'"
        )
        .await,
        0
    );
    assert_eq!(count(&client, "SELECT count(*) FROM usage_ids").await, 14);
    assert_eq!(
        count(&client, "SELECT count(*) FROM rejected_records").await,
        6
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM usage_archives WHERE manifest LIKE '%.manifest.json'"
        )
        .await,
        2
    );
    // Invoices and the report aggregates keep their rows, through a full recomputation.
    assert_eq!(count(&client, "SELECT count(*) FROM invoices").await, 5);
    cdrflow::storage::reports::refresh(&client, TZ, false)
        .await
        .unwrap();
    assert_eq!(aggregates(&client).await, reports_before);
    let full = cdrflow::storage::reports::refresh(&client, TZ, true)
        .await
        .unwrap();
    assert!(
        !full
            .periods
            .iter()
            .any(|p| p.month() == 6 || p.month() == 7),
        "{full:?}"
    );
    assert_eq!(aggregates(&client).await, reports_before);

    // Once August is billed it goes on the next run; the dropped months are not listed.
    client
        .batch_execute("UPDATE billing_periods SET closed_at = now() WHERE period = '2026-08-01'")
        .await
        .unwrap();
    let (code, out, err) = cdrflow(&[
        "retention",
        "--keep-months",
        &keep,
        "--archive",
        archive.to_str().unwrap(),
        "--database-url",
        url,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("older months: 1\n"), "{out}");
    assert!(
        out.contains("2026-08  6 usage rows, 1 rejects  archived ("),
        "{out}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// A month whose end is closer than the age limit may still receive usage: it stays.
#[tokio::test]
async fn a_month_that_may_still_receive_usage_stays() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(DATA)
        .await
        .expect("insert the data set");
    client
        .batch_execute(
            "INSERT INTO billing_periods (period, closed_at) VALUES
                 ('2026-06-01', now()), ('2026-07-01', now()), ('2026-08-01', now())",
        )
        .await
        .unwrap();
    let keep = keep_from_september();
    let (code, out, err) = cdrflow(&[
        "retention",
        "--keep-months",
        &keep,
        "--dry-run",
        "--max-event-age-days",
        "36500",
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(
            "2026-06  6 usage rows, 0 rejects  stays: may still receive usage until 2126-"
        ),
        "{out}"
    );
    assert!(!out.contains("would go"), "{out}");
    let (code, out, err) = cdrflow(&[
        "retention",
        "--keep-months",
        &keep,
        "--dry-run",
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("would go").count(), 3, "{out}");
}
