//! `cdrflow demo` as a user runs it: a small month reconciles, and the summary it writes
//! says what Postgres and `cdrflow stats` say; a used database is refused without
//! touching it; an unreachable broker or database is a clear error, never a panic, and
//! never shows the password.

use crate::helpers::*;
use std::path::Path;
use std::process::{Command, Output};

fn demo(database_url: &str, topic: &str, out: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args([
            "demo",
            "--brokers",
            &brokers(),
            "--topic",
            topic,
            "--records",
            "4000",
            "--customers",
            "300",
            "--seed",
            "7",
            "--out",
            &out.display().to_string(),
            "--http",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .args(extra)
        .env("CDRFLOW_DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cdrflow demo")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_demo_reconciles_and_its_summary_agrees_with_postgres() {
    let db = TestDb::without_catalog().await;
    let topic = topic("cdr.demo", 6).await;
    let out = tempdir();
    let run = demo(&db.url, &topic, &out, &[]);
    let printed = text(&run);
    assert_eq!(run.status.code(), Some(0), "{printed}");
    assert!(printed.contains("[8/8]"), "{printed}");
    assert!(printed.contains("Reconciled"), "{printed}");

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("summary.txt")).unwrap(),
        String::from_utf8_lossy(&run.stdout),
        "summary.txt is what was printed"
    );
    assert_eq!(summary["reconciled"], true);

    // The record counts are `cdrflow stats`'s, which are the generator's expectations.
    let s = stats(&db.url, "cdrflow");
    assert_eq!(summary["records"]["processed"], s["totals"], "{summary:#}");
    assert_eq!(summary["records"]["sent"], 4000);
    assert_eq!(
        summary["records"]["processed"]["accepted"],
        summary["records"]["expected"]["accepted"]
    );

    // Suspense is rated before the month is closed: nothing held, all of it usage.
    assert_eq!(summary["suspense"]["still_held"], 0);
    assert_eq!(
        summary["suspense"]["rated"],
        summary["records"]["expected"]["suspense"]
    );
    let client = db.client().await;
    let held: i64 = client
        .query_one(
            "SELECT count(*) FROM suspense_records WHERE resolved_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 0);

    // Invoices: the count, range and totals are those stored, to the cent.
    let row = client
        .query_one(
            "SELECT count(*), min(number), max(number), sum(subtotal)::text, sum(vat)::text,
                    sum(total)::text, min(period)::text, max(period)::text
               FROM invoices",
            &[],
        )
        .await
        .unwrap();
    let (n, first, last): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
    let inv = &summary["invoices"];
    assert_eq!(inv["count"], n);
    assert!(n >= 300, "every customer is invoiced, got {n}");
    assert_eq!(inv["first"], first);
    assert_eq!(inv["last"], last);
    assert_eq!(inv["subtotal"], row.get::<_, String>(3));
    assert_eq!(inv["vat"], row.get::<_, String>(4));
    assert_eq!(inv["total"], row.get::<_, String>(5));
    let period: String = row.get(6);
    assert_eq!(period, row.get::<_, String>(7), "one month billed");
    assert_eq!(summary["period"], period[..7]);

    // The tables add up: regions to the invoices' total, line kinds to the subtotal.
    let sum = |rows: &serde_json::Value, field: &str| -> rust_decimal::Decimal {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r[field]
                    .as_str()
                    .unwrap()
                    .parse::<rust_decimal::Decimal>()
                    .unwrap()
            })
            .sum()
    };
    let total: rust_decimal::Decimal = inv["total"].as_str().unwrap().parse().unwrap();
    let subtotal: rust_decimal::Decimal = inv["subtotal"].as_str().unwrap().parse().unwrap();
    assert_eq!(sum(&summary["revenue_by_region"], "total"), total);
    assert_eq!(sum(&inv["lines"], "amount"), subtotal);
    let events: i64 = summary["revenue_by_service"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["events"].as_i64().unwrap())
        .sum();
    let other_months: i64 = summary["other_months"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_i64().unwrap())
        .sum();
    assert_eq!(
        events + other_months,
        s["stored_rows"]["usage_events"].as_i64().unwrap(),
        "every accepted or resolved event is in the billed month or told apart"
    );
    assert_eq!(summary["top_customers"].as_array().unwrap().len(), 10);

    // Every invoice is on disk, as JSON and as PDF.
    let files: Vec<String> = std::fs::read_dir(out.join("invoices"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".pdf")).count() as i64,
        n
    );
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".json")).count() as i64,
        n
    );
    assert!(files.contains(&format!("{first}.pdf")));

    // A second run on the same database is refused, and leaves it as it was.
    let again = demo(&db.url, &topic, &tempdir(), &[]);
    let printed = text(&again);
    assert_eq!(again.status.code(), Some(1), "{printed}");
    assert!(printed.contains("--fresh"), "{printed}");
    // --fresh drops only a database named as a demo's.
    let fresh = demo(&db.url, &topic, &tempdir(), &["--fresh"]);
    let printed = text(&fresh);
    assert_eq!(fresh.status.code(), Some(1), "{printed}");
    assert!(printed.contains("refusing"), "{printed}");
    let after: i64 = client
        .query_one("SELECT count(*) FROM invoices", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, n);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_broker_or_database_is_a_clear_error_not_a_panic() {
    let db = TestDb::without_catalog().await;
    let nobody = format!("127.0.0.1:{}", free_port());
    let out = Command::new(BIN)
        .args(["demo", "--brokers", &nobody, "--records", "10"])
        .args(["--out", &tempdir().display().to_string()])
        .args(["--http", &format!("127.0.0.1:{}", free_port())])
        .env("CDRFLOW_DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let printed = text(&out);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains(&format!("Kafka broker at {nobody}")),
        "{printed}"
    );
    assert!(!printed.contains("panicked"), "{printed}");

    let url = format!(
        "postgres://postgres:hunter2@127.0.0.1:{}/cdrflow_demo_nowhere",
        free_port()
    );
    let out = Command::new(BIN)
        .args(["demo", "--brokers", &brokers(), "--records", "10"])
        .args(["--out", &tempdir().display().to_string()])
        .args(["--http", &format!("127.0.0.1:{}", free_port())])
        .env("CDRFLOW_DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let printed = text(&out);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("PostgreSQL at postgres@127.0.0.1:"),
        "{printed}"
    );
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(!printed.contains("panicked"), "{printed}");
}
