//! The billing API on the daemon's HTTP port, as a customer-care screen or a self-care
//! app uses it: month-to-date usage that adds up to what is stored and to what the
//! invoice will say, and issued invoices as the very document stored and as a PDF.

use crate::helpers::*;
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// A GET answered with JSON: (status, document).
fn get_json(d: &Daemon, path: &str) -> (u16, Value) {
    let (status, headers, body) = get_bytes(d.http_port, path);
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("application/json"),
        "GET {path}"
    );
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("GET {path}: {e} in {}", String::from_utf8_lossy(&body)));
    (status, v)
}

fn dec(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
        .parse()
        .unwrap()
}

fn start(db: &TestDb, topic: &str) -> Daemon {
    let mut d = Daemon::start(&DaemonConfig {
        topic,
        group: "api",
        database_url: &db.url,
        idle_secs: None,
        extra: vec!["--no-publish".into()],
    });
    d.wait_up();
    d
}

fn stop(mut d: Daemon) {
    d.stop();
}

/// Whitespace runs as one space: `pdftotext -layout` spreads words to their columns.
fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The API serves a customer's month-to-date usage with the counts and amounts stored and
/// the invoice's own arithmetic (its estimate is the invoice `cdrflow bill` then issues),
/// lists and serves invoices byte for byte as JSON and rendered as PDF, and answers
/// unknown things with 404 and bad periods with 400.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_serves_month_to_date_usage_with_the_invoices_arithmetic_and_invoices_as_json_and_pdf(
) {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.api", 2).await;
    let report = generate(&topic, &db, 3_000, 41, &[]);
    assert!(report.expected.accepted > 2_000, "{:?}", report.expected);

    let d = start(&db, &topic);
    let ends = end_offsets(&topic);
    let client = db.client().await;
    let started = Instant::now();
    loop {
        let stored: BTreeMap<i32, i64> = client
            .query(
                "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = 'api'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if stored == ends {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{stored:?} of {ends:?}: {}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The customer with the most September usage, and what usage_events say of them.
    let row = client
        .query_one(
            "SELECT customer_id, count(*), sum(amount) FROM usage_events
              WHERE period = '2026-09-01' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let (id, events, rated): (i64, i64, Decimal) = (row.get(0), row.get(1), row.get(2));
    assert!(events >= 5, "{events}");
    let (name, credit_limit): (String, Decimal) = {
        let r = client
            .query_one(
                "SELECT name, credit_limit FROM customers WHERE customer_id = $1",
                &[&id],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };

    let usage_path = format!("/api/customers/{id}/usage?period=2026-09");
    let (status, usage) = get_json(&d, &usage_path);
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["customer_id"], id);
    assert_eq!(usage["period"], "2026-09");
    assert_eq!(usage["currency"], "MAD");
    assert_eq!(usage["events"], events, "{usage}");
    assert_eq!(dec(&usage["rated"]), rated, "{usage}");
    assert_eq!(dec(&usage["credit_limit"]), credit_limit);
    let buckets = usage["buckets"].as_array().unwrap();
    assert!(!buckets.is_empty());
    assert_eq!(
        buckets
            .iter()
            .map(|b| b["events"].as_i64().unwrap())
            .sum::<i64>(),
        events
    );
    assert_eq!(
        buckets.iter().map(|b| dec(&b["amount"])).sum::<Decimal>(),
        rated
    );
    let allowances = usage["allowances"].as_array().unwrap();
    assert!(!allowances.is_empty(), "every plan has allowances: {usage}");
    for a in allowances {
        assert_eq!(dec(&a["used"]) + dec(&a["left"]), dec(&a["granted"]), "{a}");
        assert!(dec(&a["left"]) >= Decimal::ZERO, "{a}");
    }
    let estimate = &usage["estimate"];
    let lines = estimate["lines"].as_array().unwrap();
    assert_eq!(
        lines.iter().map(|l| dec(&l["amount"])).sum::<Decimal>(),
        dec(&estimate["subtotal"]),
        "{estimate}"
    );
    assert_eq!(
        dec(&estimate["subtotal"]) + dec(&estimate["vat"]),
        dec(&estimate["total"])
    );
    // Usage lines carry what was rated, before allowances.
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["kind"] == "usage")
            .map(|l| dec(&l["rated"]))
            .sum::<Decimal>(),
        rated
    );
    // Without a period: the current month in operator time, in which nothing happened.
    let (status, now) = get_json(&d, &format!("/api/customers/{id}/usage"));
    assert_eq!(status, 200, "{now}");
    let month = chrono::Utc::now()
        .with_timezone(&chrono_tz::Africa::Casablanca)
        .format("%Y-%m")
        .to_string();
    assert_eq!(now["period"], month.as_str());
    assert_eq!(now["events"], 0);
    stop(d);

    let (code, out, err) = cdrflow(&["bill", "--period", "2026-09", "--database-url", &db.url]);
    assert_eq!(code, 0, "{out}{err}");
    let row = client
        .query_one(
            "SELECT number, total, document FROM invoices WHERE customer_id = $1 AND period = '2026-09-01'",
            &[&id],
        )
        .await
        .unwrap();
    let (number, total, document): (String, Decimal, String) = (row.get(0), row.get(1), row.get(2));

    let d = start(&db, &topic);
    // The estimate, asked again once the period is invoiced, is that invoice.
    let (status, again) = get_json(&d, &usage_path);
    assert_eq!(status, 200);
    // Before the bill it said no invoice; now it names it, and nothing else moved.
    assert_eq!(usage["invoice"], Value::Null);
    assert_eq!(again["invoice"], Value::String(number.clone()));
    let (mut before, mut after) = (usage.clone(), again.clone());
    before.as_object_mut().unwrap().remove("invoice");
    after.as_object_mut().unwrap().remove("invoice");
    assert_eq!(after, before, "nothing moved in between");
    assert_eq!(dec(&again["estimate"]["total"]), total);
    let doc: Value = serde_json::from_str(&document).unwrap();
    for field in ["lines", "subtotal", "vat", "total"] {
        assert_eq!(again["estimate"][field], doc[field], "{field}");
    }
    assert_eq!(again["allowances"], doc["allowances"]);

    let (status, list) = get_json(&d, &format!("/api/invoices?period=2026-09&customer={id}"));
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["number"], number.as_str());
    assert_eq!(list[0]["customer_id"], id);
    assert_eq!(list[0]["period"], "2026-09-01");
    assert_eq!(dec(&list[0]["total"]), total);

    let (status, headers, body) = get_bytes(d.http_port, &format!("/api/invoices/{number}.json"));
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert!(
        body == document.as_bytes(),
        "the stored document, byte for byte"
    );

    let (status, headers, pdf) = get_bytes(d.http_port, &format!("/api/invoices/{number}.pdf"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&pdf));
    assert_eq!(headers["content-type"], "application/pdf");
    assert!(pdf.starts_with(b"%PDF"), "{:?}", &pdf[..pdf.len().min(16)]);
    let file = tempdir().join(format!("{number}.pdf"));
    std::fs::write(&file, &pdf).unwrap();
    let text = Command::new("pdftotext")
        .args(["-layout", file.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext (Debian package poppler-utils)");
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = squeeze(&String::from_utf8_lossy(&text.stdout));
    let mut wanted = vec![
        name.clone(),
        number.clone(),
        doc["total"].as_str().unwrap().to_string(),
    ];
    wanted.extend(
        doc["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["description"].as_str().unwrap().to_string()),
    );
    for w in &wanted {
        assert!(
            text.contains(&squeeze(w)),
            "{w:?} not in the PDF text:\n{text}"
        );
    }

    for (path, status) in [
        ("/api/invoices/INV-99999999.json", 404),
        ("/api/invoices/INV-99999999.pdf", 404),
        ("/api/customers/999999999/usage?period=2026-09", 404),
        ("/api/customers/999999999/usage", 404),
        (
            &format!("/api/customers/{id}/usage?period=2026-13")[..],
            400,
        ),
        (
            &format!("/api/customers/{id}/usage?period=September")[..],
            400,
        ),
        ("/api/invoices?period=2026-9", 400),
    ] {
        let (got, body) = get_json(&d, path);
        assert_eq!(got, status, "GET {path}: {body}");
        assert!(body["error"].is_string(), "GET {path}: {body}");
    }
    stop(d);
}
