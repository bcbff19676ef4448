//! Event time at the edges: a record far older than its arrival (a switch after a clock
//! reset) is rejected as too_old with its raw bytes kept, and opens no billing period.

use crate::helpers::*;
use chrono::{Duration as Days, NaiveDate, Utc};
use rust_decimal::Decimal;
use std::time::Duration;

fn voice_at(timestamp: &str) -> Vec<u8> {
    format!(
        r#"{{"record_type":"voice","timestamp":"{timestamp}","caller_id":"0612345678","callee_id":"0698765432","duration_sec":30,"cell_id":"RABAT_1","technology":"4G"}}"#
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn records_older_than_the_age_limit_are_rejected_as_too_old_and_open_no_period() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.too-old", 1).await;
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

    let now = Utc::now();
    let at = |days: i64| {
        (now - Days::days(days))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let key = Some(&b"212612345678"[..]);
    let payloads = [
        voice_at("1970-01-01T00:00:00Z"),
        voice_at("0001-01-01T00:00:00Z"),
        voice_at(&at(100)),
        voice_at(&at(80)),
        voice_at(&at(1)),
    ];
    produce_raw(
        &topic,
        0,
        &payloads
            .iter()
            .map(|p| (key, p.clone()))
            .collect::<Vec<_>>(),
    );

    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "too-old",
        database_url: &db.url,
        idle_secs: Some(3),
        extra: vec!["--max-event-age-days".into(), "90".into()],
    });
    assert!(
        daemon.wait(Duration::from_secs(120)).success(),
        "{}",
        daemon.log_text()
    );

    let client = db.client().await;
    let rows = client
        .query(
            "SELECT src_offset, reason, detail, raw FROM rejected_records ORDER BY src_offset",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![
            (0, "too_old".to_string()),
            (1, "too_old".to_string()),
            (2, "too_old".to_string()),
        ]
    );
    for (row, payload) in rows.iter().zip(&payloads) {
        assert_eq!(&row.get::<_, Vec<u8>>(3), payload, "the raw record is kept");
        assert!(
            row.get::<_, String>(2).contains("the limit is 90 days"),
            "{}",
            row.get::<_, String>(2)
        );
    }
    let accepted: i64 = client
        .query_one("SELECT count(*) FROM usage_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(accepted, 2, "records inside the limit are billed as usual");
    let oldest: Option<NaiveDate> = client
        .query_one("SELECT min(period) FROM billing_periods", &[])
        .await
        .unwrap()
        .get(0);
    let limit = (now - Days::days(120)).date_naive();
    assert!(
        oldest.is_some_and(|p| p > limit),
        "no billing period opened by an ancient record: oldest {oldest:?}"
    );

    let s = stats(&db.url, "too-old");
    assert_eq!(s["totals"]["rejected"]["too_old"], 3);
    assert_eq!(s["balanced"], true);
}

fn call(caller: &str, local_time: &str) -> Vec<u8> {
    format!(
        r#"{{"record_type":"voice","timestamp":"{local_time}","caller_id":"{caller}","callee_id":"0698765432","duration_sec":60,"cell_id":"RABAT_1","technology":"4G"}}"#
    )
    .into_bytes()
}

/// A recycled number: the call before the new owner's activation is the previous owner's.
/// It is held in suspense, stays held when suspense is resolved, and never reaches the new
/// owner's invoice, whose first month is charged by days.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_before_activation_is_held_and_the_first_month_is_charged_by_days() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.activation", 1).await;
    let out = import_customers(
        &db,
        "0661000888,Omar Idrissi,student,Casablanca-Settat,yes,2026-09-15,500\n",
    );
    assert!(out.contains("1 added"), "{out}");
    let key = Some(&b"212661000888"[..]);
    produce_raw(
        &topic,
        0,
        &[
            (key, call("0661000888", "2026-09-14T23:30:00")),
            (key, call("0661000888", "2026-09-15T00:30:00")),
        ],
    );
    drain(&db.url, &topic, "activation");

    let client = db.client().await;
    let usage: Vec<chrono::DateTime<Utc>> = client
        .query("SELECT event_time FROM usage_events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(usage.len(), 1, "only the new owner's call is usage");
    let held = "SELECT reason, src_offset FROM suspense_records WHERE resolved_at IS NULL";
    let rows = client.query(held, &[]).await.unwrap();
    let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![("before_activation".to_string(), 0)]);
    let s = stats(&db.url, "activation");
    assert_eq!(s["totals"]["suspense"], 1);
    assert_eq!(s["totals"]["accepted"], 1);

    // Resolving suspense (a customer import runs it) leaves the previous owner's call held.
    let out = import_customers(
        &db,
        "0661000999,Sara Berrada,basic,Casablanca-Settat,no,2020-01-01,500\n",
    );
    assert!(out.contains("suspense: 0 record(s) rated"), "{out}");
    assert_eq!(client.query(held, &[]).await.unwrap().len(), 1);

    let (code, out, err) = cdrflow(&["bill", "--period", "2026-09", "--database-url", &db.url]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<(String, Decimal)> = client
        .query(
            "SELECT l.description, l.amount FROM invoice_lines l JOIN invoices i USING (number)
               JOIN customers c USING (customer_id)
              WHERE c.msisdn = '+212661000888' AND l.kind IN ('plan_fee', 'usage')
              ORDER BY l.line_no",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // 15 to 30 September: 16 of 30 days, 49.00 × 16 / 30 = 26.13.
    assert_eq!(
        lines,
        vec![
            ("Voice calls (1)".to_string(), "0.30".parse().unwrap()),
            (
                "Monthly fee, Student (16/30 days)".to_string(),
                "26.13".parse().unwrap()
            ),
        ]
    );
}
