//! CSV exports opened in a spreadsheet cannot run formulas: a customer imported with a
//! formula for a name, and a number that starts with `+`, come out of `cdrflow report
//! --format csv`, `GET /api/reports/{name}?format=csv` and `GET /api/invoices?format=csv`
//! as text with a leading `'`, while JSON keeps them as they are and amounts, negative
//! ones included, stay numbers.

use crate::helpers::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The name an attacker gives a customer so that a spreadsheet opens a link when the
/// report is opened.
const FORMULA: &str = r#"=HYPERLINK("http://x","y")"#;

/// A CSV document's rows after its header, as cells.
fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader
        .headers()
        .unwrap_or_else(|e| panic!("{e}: {text}"))
        .iter()
        .map(String::from)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            r.unwrap_or_else(|e| panic!("{e}: {text}"))
                .iter()
                .map(String::from)
                .collect()
        })
        .collect();
    (header, rows)
}

/// The cell of `column` in `row`.
fn cell<'a>(header: &[String], row: &'a [String], column: &str) -> &'a str {
    let i = header
        .iter()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no column {column} in {header:?}"));
    &row[i]
}

#[tokio::test(flavor = "multi_thread")]
async fn formula_like_text_is_neutralized_in_every_csv_export_and_amounts_stay_numbers() {
    let db = TestDb::new().await;
    let out = import_customers(
        &db,
        "0661000555,\"=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",basic,Casablanca-Settat,no,2025-01-01,500\n",
    );
    assert!(out.contains("1 added"), "{out}");
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT customer_id, name, msisdn FROM customers WHERE msisdn = '+212661000555'",
            &[],
        )
        .await
        .expect("the imported customer");
    let (id, name, msisdn): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(name, FORMULA, "the name is stored as imported");

    // One call in September 2026, rated by the daemon, which stays up for the API.
    let topic = topic("cdr.raw.exports", 1).await;
    let mut d = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "exports",
        database_url: &db.url,
        idle_secs: None,
        extra: vec!["--no-publish".into()],
    });
    d.wait_up();
    let call = serde_json::json!({"record_type": "voice",
        "timestamp": "2026-09-10T10:00:00+01:00", "caller_id": "0661000555",
        "callee_id": "+212661234567", "duration_sec": 95, "cell_id": "CASABLANCA_1",
        "technology": "4G"});
    produce_raw(&topic, 0, &[(None, serde_json::to_vec(&call).unwrap())]);
    let started = Instant::now();
    loop {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM usage_events WHERE customer_id = $1 AND amount > 0",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        if n == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the call was not rated; daemon log:\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Billing September refreshes the report aggregates too.
    let (code, out, err) = cdrflow(&[
        "bill",
        "--period",
        "2026-09",
        "--no-pdf",
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 0, "bill: {out}{err}");

    // The report, from the CLI and from the API: the same bytes, the name and the number
    // written as text, the amounts as numbers.
    let (code, cli_csv, err) = cdrflow(&[
        "report",
        "top_customers",
        "--period",
        "2026-09",
        "--format",
        "csv",
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 0, "report: {err}");
    assert!(
        cli_csv.contains(r#","'=HYPERLINK(""http://x"",""y"")",'+212661000555,"#),
        "{cli_csv}"
    );
    let (header, rows) = csv_rows(&cli_csv);
    assert_eq!(rows.len(), 1, "{cli_csv}");
    assert_eq!(cell(&header, &rows[0], "customer_id"), id.to_string());
    assert_eq!(cell(&header, &rows[0], "name"), format!("'{FORMULA}"));
    assert_eq!(cell(&header, &rows[0], "msisdn"), format!("'{msisdn}"));
    let rated: rust_decimal::Decimal = cell(&header, &rows[0], "rated")
        .parse()
        .unwrap_or_else(|e| panic!("rated is not a number: {e}: {cli_csv}"));
    assert!(rated > rust_decimal::Decimal::ZERO, "{cli_csv}");

    let (status, headers, body) = get_bytes(
        d.http_port,
        "/api/reports/top_customers?period=2026-09&format=csv",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(String::from_utf8_lossy(&body), cli_csv, "API and CLI CSV");

    // JSON is no spreadsheet: it keeps the text as it is.
    let (status, _, body) = get_bytes(d.http_port, "/api/reports/top_customers?period=2026-09");
    assert_eq!(status, 200);
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["rows"][0]["name"], FORMULA, "{json}");
    assert_eq!(json["rows"][0]["msisdn"], msisdn.as_str(), "{json}");

    // The invoices CSV: cdrflow's own numbers and currencies never look like formulas, but
    // a row written by another tool can. A credit note with a number starting with `-`
    // and negative amounts: the number is neutralized, the amounts stay numbers.
    client
        .execute(
            "INSERT INTO invoices (number, seq, customer_id, period, catalog_version, currency,
                                   subtotal, vat, total, document, issued_at)
             SELECT '-CREDIT-1', 1000, $1, '2026-10-01',
                    (SELECT max(version) FROM catalog_versions), '@MAD', -12.50, -2.50,
                    -15.00, '{}', '2026-11-02 08:00Z'",
            &[&id],
        )
        .await
        .expect("insert the credit note");
    let (status, headers, body) = get_bytes(
        d.http_port,
        &format!("/api/invoices?customer={id}&format=csv"),
    );
    let text = String::from_utf8_lossy(&body).to_string();
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("text/csv; charset=utf-8")
    );
    let (header, rows) = csv_rows(&text);
    assert_eq!(rows.len(), 2, "{text}");
    // September's invoice as cdrflow numbered it, untouched.
    assert!(
        cell(&header, &rows[0], "number").starts_with("INV-"),
        "{text}"
    );
    assert_eq!(cell(&header, &rows[0], "currency"), "MAD", "{text}");
    assert_eq!(
        rows[1],
        [
            "'-CREDIT-1",
            &id.to_string(),
            "2026-10",
            "'@MAD",
            "-12.50",
            "-2.50",
            "-15.00",
            "2026-11-02T08:00:00Z",
        ],
        "{text}"
    );
    d.stop();
}
