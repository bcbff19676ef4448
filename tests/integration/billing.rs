//! `cdrflow bill`: closing a period and issuing its invoices, against the real database,
//! broker and daemon. What a billing team must be able to trust: invoices reconcile with
//! the rated usage to the last decimal, numbers have no gap and no repeat even when a run
//! is killed, usage arriving after a period was closed is billed once on the next
//! invoice, and an invoice does not depend on how its events arrived.

use crate::helpers::*;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// `cdrflow bill --period PERIOD` on `db`, which must succeed: its output.
fn bill(db: &TestDb, period: &str, extra: &[&str]) -> String {
    let mut args = vec!["bill", "--period", period, "--database-url", &db.url];
    args.extend(extra);
    let (code, out, err) = cdrflow(&args);
    assert_eq!(code, 0, "bill {period} failed:\n{out}{err}");
    out
}

/// Every stored column of a period's invoices and of their lines, in number order: what
/// a second `bill` must leave exactly as it is.
async fn invoice_rows(
    client: &tokio_postgres::Client,
    period: NaiveDate,
) -> (Vec<String>, Vec<String>) {
    let invoices = client
        .query(
            "SELECT i::text FROM invoices i WHERE period = $1 ORDER BY seq",
            &[&period],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let lines = client
        .query(
            "SELECT l::text FROM invoice_lines l JOIN invoices i USING (number)
              WHERE i.period = $1 ORDER BY l.number, l.line_no",
            &[&period],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (invoices, lines)
}

/// When the report aggregates were last refreshed (None: never).
async fn refreshed_at(client: &tokio_postgres::Client) -> Option<String> {
    client
        .query_opt("SELECT refreshed_at::text FROM report_refreshes", &[])
        .await
        .unwrap()
        .map(|r| r.get(0))
}

/// Every seq ever issued, in order.
async fn all_seqs(client: &tokio_postgres::Client) -> Vec<i64> {
    client
        .query("SELECT seq FROM invoices ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn sequence_last_value(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT last_value FROM invoice_sequence WHERE series = 'invoice'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The customers a period must invoice, by our own reading of the rule: activated by the
/// period's last day, or with usage in it.
async fn active_customers(client: &tokio_postgres::Client, period: NaiveDate) -> Vec<i64> {
    client
        .query(
            "SELECT c.customer_id FROM customers c
              WHERE c.activated_on <= ($1::date + interval '1 month' - interval '1 day')::date
                 OR EXISTS (SELECT 1 FROM usage_events u
                             WHERE u.customer_id = c.customer_id AND u.period = $1)
              ORDER BY c.customer_id",
            &[&period],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn invoiced_customers(client: &tokio_postgres::Client, period: NaiveDate) -> Vec<i64> {
    client
        .query(
            "SELECT customer_id FROM invoices WHERE period = $1 ORDER BY customer_id",
            &[&period],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Every invoice of the period adds up: its lines sum to its subtotal, VAT is 20 % of the
/// rounded subtotal, subtotal + VAT = total, its number is its seq; and its JSON document
/// says the same as its rows. Returns the number of invoices.
async fn assert_invoices_add_up(client: &tokio_postgres::Client, period: NaiveDate) -> usize {
    let r = client
        .query_one(
            "SELECT count(*) FILTER (WHERE l.sum IS DISTINCT FROM i.subtotal),
                    count(*) FILTER (WHERE i.subtotal + i.vat <> i.total),
                    count(*) FILTER (WHERE i.vat <> round(i.subtotal * 0.20, 2)),
                    count(*) FILTER (WHERE i.number <> 'INV-' || lpad(i.seq::text, 8, '0')),
                    count(*)
               FROM invoices i
               LEFT JOIN (SELECT number, sum(amount) AS sum FROM invoice_lines GROUP BY number) l
                 USING (number)
              WHERE i.period = $1",
            &[&period],
        )
        .await
        .unwrap();
    let counts: Vec<i64> = (0..4).map(|i| r.get(i)).collect();
    assert_eq!(
        counts,
        [0, 0, 0, 0],
        "{period}: lines not adding up to the subtotal, subtotal + VAT not the total, VAT not \
         20 % of the subtotal, number not the seq"
    );
    let n: i64 = r.get(4);

    let rows = client
        .query(
            "SELECT i.number, i.customer_id, i.subtotal, i.vat, i.total, i.document,
                    array_agg(l.kind ORDER BY l.line_no), array_agg(l.amount ORDER BY l.line_no)
               FROM invoices i JOIN invoice_lines l USING (number)
              WHERE i.period = $1
              GROUP BY i.number",
            &[&period],
        )
        .await
        .unwrap();
    assert_eq!(rows.len() as i64, n, "{period}: every invoice has lines");
    let dec = |v: &serde_json::Value| {
        Decimal::from_str(
            v.as_str()
                .unwrap_or_else(|| panic!("not a decimal string: {v}")),
        )
        .unwrap()
    };
    for r in rows {
        let number: String = r.get(0);
        let doc: serde_json::Value = serde_json::from_str(r.get::<_, &str>(5)).unwrap();
        assert_eq!(doc["number"], number.as_str());
        assert_eq!(doc["customer"]["id"], r.get::<_, i64>(1), "{number}");
        assert_eq!(doc["period_start"], period.to_string(), "{number}");
        assert_eq!(dec(&doc["subtotal"]), r.get::<_, Decimal>(2), "{number}");
        assert_eq!(dec(&doc["vat"]), r.get::<_, Decimal>(3), "{number}");
        assert_eq!(dec(&doc["total"]), r.get::<_, Decimal>(4), "{number}");
        assert!(doc["issued_at"].is_string(), "{number}: issued_at");
        let kinds: Vec<String> = r.get(6);
        let amounts: Vec<Decimal> = r.get(7);
        let doc_lines = doc["lines"].as_array().unwrap();
        assert_eq!(
            doc_lines
                .iter()
                .map(|l| (l["kind"].as_str().unwrap().to_string(), dec(&l["amount"])))
                .collect::<Vec<_>>(),
            kinds.into_iter().zip(amounts).collect::<Vec<_>>(),
            "{number}: document lines"
        );
    }
    n as usize
}

/// Σ and count of the rated usage events of a period.
async fn usage_totals(client: &tokio_postgres::Client, period: NaiveDate) -> (Decimal, i64) {
    let r = client
        .query_one(
            "SELECT COALESCE(sum(amount), 0), count(*) FROM usage_events WHERE period = $1",
            &[&period],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

/// The billing team's month-end reconciliation: the invoices of a generated month carry
/// exactly the rated amount of its accepted events, the buckets they were made from are
/// exactly those events, every active customer has one invoice numbered without gap, and
/// billing again changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_billed_month_reconciles_with_its_rated_usage_to_the_last_decimal() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.bill", 3).await;
    let report = generate(&topic, &db, 20_000, 31, &[]);
    let client = db.client().await;
    // Two customers outside the generated pool, neither with usage: one active from the
    // period's last day (invoiced: the fees alone), one from the next month (not).
    let extra: Vec<i64> = client
        .query(
            "INSERT INTO customers (msisdn, name, plan, activated_on)
             VALUES ('+212680000001', 'Last Day', 'basic', '2026-09-30'),
                    ('+212680000002', 'Next Month', 'basic', '2026-10-01')
             RETURNING customer_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    drain(&db.url, &topic, "billing");
    let s = stats(&db.url, "billing");
    assert_eq!(s["stored_rows"]["usage_events"], report.expected.accepted);

    let september = day("2026-09-01");
    let (usage_sum, usage_count) = usage_totals(&client, september).await;
    assert!(usage_count > 15_000, "September events: {usage_count}");
    let out = bill(&db, "2026-09", &[]);
    assert!(out.contains("closed now"), "{out}");

    // The usage lines carry the rated amount exactly; rounding them moves the sum by at
    // most half a cent per line.
    let r = client
        .query_one(
            "SELECT sum(l.rated), sum(l.amount), count(*) FROM invoice_lines l
               JOIN invoices i USING (number)
              WHERE i.period = $1 AND l.kind = 'usage'",
            &[&september],
        )
        .await
        .unwrap();
    let (rated, rounded, lines): (Decimal, Decimal, i64) = (r.get(0), r.get(1), r.get(2));
    assert_eq!(
        rated.to_string(),
        usage_sum.to_string(),
        "Σ rated of usage lines"
    );
    assert_eq!(rated.scale(), 6);
    assert!(
        (rounded - rated).abs() <= Decimal::new(5, 3) * Decimal::from(lines),
        "Σ rounded usage lines {rounded} vs Σ rated {rated} over {lines} lines"
    );
    // And per customer, not only in total.
    let off: i64 = client
        .query_one(
            "SELECT count(*) FROM
                (SELECT i.customer_id, sum(l.rated) AS rated FROM invoice_lines l
                   JOIN invoices i USING (number)
                  WHERE i.period = $1 AND l.kind = 'usage' GROUP BY 1) l
                FULL JOIN
                (SELECT customer_id, sum(amount) AS amount FROM usage_events
                  WHERE period = $1 GROUP BY 1) u USING (customer_id)
              WHERE l.rated IS DISTINCT FROM u.amount",
            &[&september],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        off, 0,
        "customers whose usage lines differ from their events"
    );

    // The buckets are the events, in amount and in count.
    let r = client
        .query_one(
            "SELECT sum(amount + extra), sum(events)::int8 FROM usage_buckets WHERE period = $1",
            &[&september],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, Decimal>(0).to_string(), usage_sum.to_string());
    assert_eq!(r.get::<_, i64>(1), usage_count);

    // One invoice per active customer, numbered 1..N.
    let active = active_customers(&client, september).await;
    assert!(active.contains(&extra[0]) && !active.contains(&extra[1]));
    assert_eq!(invoiced_customers(&client, september).await, active);
    let n = assert_invoices_add_up(&client, september).await;
    assert_eq!(n, active.len());
    assert_eq!(all_seqs(&client).await, (1..=n as i64).collect::<Vec<_>>());
    assert_eq!(sequence_last_value(&client).await, n as i64);
    assert!(
        out.contains(&format!("({n} invoices issued now, 0 before;")),
        "{out}"
    );
    // Issuing invoices refreshes the report aggregates (docs/reports.md).
    assert!(out.contains("report aggregates refreshed ("), "{out}");
    let refreshed = refreshed_at(&client).await;
    assert!(refreshed.is_some(), "no refresh recorded after bill");

    // The customer active from the last day pays the regulatory fee and its VAT, nothing
    // else; the one from October has no invoice, no line, nothing.
    let last_day = client
        .query_one(
            "SELECT i.total, array_agg(l.kind || ' ' || l.amount ORDER BY l.line_no)
               FROM invoices i JOIN invoice_lines l USING (number)
              WHERE i.customer_id = $1 GROUP BY i.total",
            &[&extra[0]],
        )
        .await
        .unwrap();
    assert_eq!(last_day.get::<_, Decimal>(0), Decimal::new(120, 2));
    assert_eq!(
        last_day.get::<_, Vec<String>>(1),
        ["regulatory_fee 1.00"],
        "lines of the customer active from the last day"
    );
    let nothing: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM invoices WHERE customer_id = $1)
                  + (SELECT count(*) FROM invoices WHERE period <> $2)
                  + (SELECT count(*) FROM rating_adjustments)",
            &[&extra[1], &september],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        nothing, 0,
        "invoices of the October customer or of another period, adjustments"
    );
    let closed = client
        .query_one(
            "SELECT closed_at IS NOT NULL, billed_at IS NOT NULL, invoices
               FROM billing_periods WHERE period = $1",
            &[&september],
        )
        .await
        .unwrap();
    assert!(closed.get::<_, bool>(0) && closed.get::<_, bool>(1));
    assert_eq!(closed.get::<_, Option<i32>>(2), Some(n as i32));

    // Billing again issues nothing and touches no invoice, line or number.
    let before = invoice_rows(&client, september).await;
    let closed_at: String = client
        .query_one(
            "SELECT closed_at::text || ' ' || billed_at::text FROM billing_periods WHERE period = $1",
            &[&september],
        )
        .await
        .unwrap()
        .get(0);
    let again = bill(&db, "2026-09", &[]);
    assert!(
        again.contains(&format!(
            "was closed (0 invoices issued now, {n} before; 0 adjustments"
        )),
        "{again}"
    );
    assert_eq!(invoice_rows(&client, september).await, before);
    assert_eq!(sequence_last_value(&client).await, n as i64);
    // Nothing was issued, so nothing is refreshed: a re-run does not pay for a refresh.
    assert!(!again.contains("report aggregates"), "{again}");
    assert_eq!(refreshed_at(&client).await, refreshed);
    let r = client
        .query_one(
            "SELECT closed_at::text || ' ' || billed_at::text, invoices FROM billing_periods WHERE period = $1",
            &[&september],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), closed_at);
    assert_eq!(r.get::<_, Option<i32>>(1), Some(n as i32));
}

/// A `bill` killed in the middle of a period leaves whole chunks committed and nothing of
/// the chunk it was in; the next run finishes the period with no gap and no repeat.
#[tokio::test(flavor = "multi_thread")]
async fn a_bill_killed_half_way_is_finished_by_the_next_run_without_gap_or_repeat() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.billkill", 2).await;
    generate(&topic, &db, 3_000, 32, &[]);
    drain(&db.url, &topic, "billing");
    let september = day("2026-09-01");
    let watcher = db.client().await;
    let active = active_customers(&watcher, september).await;
    assert_eq!(active.len(), 500);

    // Hold the 300th customer's invoice key in an open transaction: the run blocks on it
    // deterministically, in the sixth chunk of 50, after five chunks have committed.
    let blocked = active[299];
    let mut holder = db.client().await;
    let tx = holder.transaction().await.unwrap();
    tx.execute(
        "INSERT INTO invoices (number, seq, customer_id, period, catalog_version, currency,
                               subtotal, vat, total, document)
         VALUES ('BLOCKER', -1, $1, $2, 1, 'MAD', 0, 0, 0, '{}')",
        &[&blocked, &september],
    )
    .await
    .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "bill",
            "--period",
            "2026-09",
            "--chunk",
            "50",
            "--database-url",
            &db.url,
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Wait until invoices are committed and the run waits on a lock, twice in a row.
    let started = Instant::now();
    let mut last = -1_i64;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("bill exited ({status}) instead of blocking");
        }
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "bill did not block on the held invoice"
        );
        let r = watcher
            .query_one(
                "SELECT (SELECT count(*) FROM invoices WHERE period = $1),
                        (SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                          WHERE NOT l.granted AND a.datname = current_database())",
                &[&september],
            )
            .await
            .unwrap();
        let (count, waiting): (i64, i64) = (r.get(0), r.get(1));
        if count > 0 && waiting > 0 && count == last {
            break;
        }
        last = count;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    tx.rollback().await.unwrap();

    // The killed run's session goes away with its open chunk (it held the billing lock).
    let started = Instant::now();
    loop {
        let held: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_locks
                  WHERE locktype = 'advisory'
                    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if held == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the killed run's session still holds the billing lock"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Five whole chunks, numbered 1..250, nothing of the sixth, not the blocker.
    let partial = 250_usize;
    assert_eq!(
        invoiced_customers(&watcher, september).await,
        active[..partial]
    );
    assert_eq!(
        all_seqs(&watcher).await,
        (1..=partial as i64).collect::<Vec<_>>()
    );
    assert_eq!(sequence_last_value(&watcher).await, partial as i64);
    assert_eq!(assert_invoices_add_up(&watcher, september).await, partial);
    let r = watcher
        .query_one(
            "SELECT (SELECT count(*) FROM invoices WHERE number = 'BLOCKER' OR seq < 1)
                  + (SELECT count(*) FROM invoice_lines WHERE number NOT IN
                       (SELECT number FROM invoices WHERE seq BETWEEN 1 AND 250)),
                    (SELECT closed_at IS NOT NULL AND billed_at IS NULL
                       FROM billing_periods WHERE period = $1)",
            &[&september],
        )
        .await
        .unwrap();
    assert_eq!(
        r.get::<_, i64>(0),
        0,
        "blocker or lines of the killed chunk"
    );
    assert!(r.get::<_, bool>(1), "the period is closed, not billed");
    let first = invoice_rows(&watcher, september).await;

    let out = bill(&db, "2026-09", &["--chunk", "50", "--no-report-refresh"]);
    let n = active.len();
    // The killed run never reached its refresh, and this one was told not to refresh.
    assert!(
        out.contains("report aggregates not refreshed (--no-report-refresh)"),
        "{out}"
    );
    let refreshes: i64 = watcher
        .query_one("SELECT count(*) FROM report_refreshes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(refreshes, 0, "a refresh despite --no-report-refresh");
    assert!(
        out.contains(&format!(
            "({} invoices issued now, {partial} before;",
            n - partial
        )),
        "{out}"
    );
    assert_eq!(invoiced_customers(&watcher, september).await, active);
    assert_eq!(all_seqs(&watcher).await, (1..=n as i64).collect::<Vec<_>>());
    assert_eq!(sequence_last_value(&watcher).await, n as i64);
    assert_eq!(assert_invoices_add_up(&watcher, september).await, n);
    let distinct: i64 = watcher
        .query_one("SELECT count(DISTINCT number) FROM invoices", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(distinct, n as i64);
    // What the killed run committed is kept as it was; the rest continues its numbering.
    let (rows, lines) = invoice_rows(&watcher, september).await;
    assert_eq!(rows[..partial], first.0[..]);
    assert!(lines.starts_with(&first.1));
    let r = watcher
        .query_one(
            "SELECT billed_at IS NOT NULL, invoices FROM billing_periods WHERE period = $1",
            &[&september],
        )
        .await
        .unwrap();
    assert!(r.get::<_, bool>(0));
    assert_eq!(r.get::<_, Option<i32>>(1), Some(n as i32));
}

/// Every column of a period's buckets, in key order.
async fn buckets_of(client: &tokio_postgres::Client, period: NaiveDate) -> Vec<String> {
    client
        .query(
            "SELECT b::text FROM usage_buckets b WHERE period = $1
              ORDER BY customer_id, tariff_id, band, catalog_version",
            &[&period],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Late usage rows: (record_id, customer, amount, period, kind, delta, in_place, billed_on).
type LateRow = (
    String,
    i64,
    Decimal,
    NaiveDate,
    String,
    Decimal,
    bool,
    Option<String>,
);

/// The usage stored from `topic` partition 0 at or after `from`, with its adjustment.
async fn late_rows(client: &tokio_postgres::Client, topic: &str, from: i64) -> Vec<LateRow> {
    client
        .query(
            "SELECT u.record_id, u.customer_id, u.amount, a.period, a.kind, a.delta,
                    a.in_place, a.billed_on
               FROM usage_events u JOIN rating_adjustments a USING (record_id)
              WHERE u.src_topic = $1 AND u.src_partition = 0 AND u.src_offset >= $2
              ORDER BY u.src_offset",
            &[&topic, &from],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
            )
        })
        .collect()
}

/// Records that arrive after their period was invoiced are stored as usage of their
/// period, stay out of its closed buckets and invoices, and are billed exactly once, as
/// dated adjustment lines, on the customer's next invoice; a replay bills them again
/// nowhere.
#[tokio::test(flavor = "multi_thread")]
async fn late_usage_is_billed_once_on_the_next_invoice() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.billlate", 2).await;
    generate(&topic, &db, 3_000, 33, &[]);
    drain(&db.url, &topic, "billing");
    let client = db.client().await;
    let (september, october, november) = (day("2026-09-01"), day("2026-10-01"), day("2026-11-01"));
    bill(&db, "2026-09", &[]);
    let september_invoices = invoice_rows(&client, september).await;
    let buckets_before = buckets_of(&client, september).await;
    let (_, september_events) = usage_totals(&client, september).await;
    // Two customers of the pool send September records after the close: A two calls on
    // the 30th and an SMS on the 12th, B a data session on the 20th; and B an SMS at
    // 23:30 UTC on the 30th, which is 00:30 on 1 October operator time: October usage.
    let pair = client
        .query(
            "SELECT customer_id, msisdn FROM customers ORDER BY customer_id LIMIT 2",
            &[],
        )
        .await
        .unwrap();
    let (a, a_msisdn): (i64, String) = (pair[0].get(0), pair[0].get(1));
    let (b, b_msisdn): (i64, String) = (pair[1].get(0), pair[1].get(1));
    let records = [
        serde_json::json!({"record_type": "voice", "timestamp": "2026-09-30T10:00:00+01:00",
            "caller_id": a_msisdn, "callee_id": "+212661234567", "duration_sec": 120,
            "cell_id": "CASABLANCA_1", "technology": "4G"}),
        serde_json::json!({"record_type": "voice", "timestamp": "2026-09-30T21:40:17+01:00",
            "caller_id": a_msisdn, "callee_id": "+33612345678", "duration_sec": 47,
            "cell_id": "RABAT_3", "technology": "5G"}),
        serde_json::json!({"record_type": "sms", "timestamp": "2026-09-12T09:15:00+01:00",
            "sender_id": a_msisdn, "receiver_id": "0661234567",
            "cell_id": "CASABLANCA_2", "technology": "4G"}),
        serde_json::json!({"record_type": "data", "timestamp": "2026-09-20T23:30:00+01:00",
            "user_id": b_msisdn, "data_volume_mb": 150.5, "session_duration_sec": 900,
            "cell_id": "TANGER_4", "technology": "4G"}),
        serde_json::json!({"record_type": "sms", "timestamp": "2026-09-30T23:30:00Z",
            "sender_id": b_msisdn, "receiver_id": "+212661234567",
            "cell_id": "TANGER_4", "technology": "4G"}),
    ];
    let first_offset = end_offsets(&topic)[&0];
    let payloads: Vec<(Option<&[u8]>, Vec<u8>)> = records
        .iter()
        .map(|r| (None, serde_json::to_vec(r).unwrap()))
        .collect();
    produce_raw(&topic, 0, &payloads);
    drain(&db.url, &topic, "billing");

    // Stored as September usage, booked as late, not billed yet.
    // Stored as September usage, booked as late, not billed yet.
    let late = late_rows(&client, &topic, first_offset).await;
    assert_eq!(
        late.iter().map(|l| l.1).collect::<Vec<_>>(),
        [a, a, a, b],
        "late records stored as usage with one adjustment each"
    );
    for (id, _, amount, period, kind, delta, in_place, billed_on) in &late {
        assert!(*amount > Decimal::ZERO, "{id}");
        assert_eq!(
            (
                *period,
                kind.as_str(),
                delta,
                *in_place,
                billed_on.as_deref()
            ),
            (september, "late", amount, false, None),
            "{id}"
        );
    }
    let r = client
        .query_one(
            "SELECT (SELECT count(*) FROM rating_adjustments),
                    (SELECT count(*) FROM usage_events WHERE period = $1)",
            &[&september],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, i64>(0), 4, "adjustments");
    let boundary = client
        .query_one(
            "SELECT customer_id, period FROM usage_events
              WHERE src_topic = $1 AND src_partition = 0 AND src_offset = $2",
            &[&topic, &(first_offset + 4)],
        )
        .await
        .unwrap();
    assert_eq!(
        (boundary.get::<_, i64>(0), boundary.get::<_, NaiveDate>(1)),
        (b, october),
        "the SMS of 00:30 on 1 October, operator time"
    );
    // ... and in B's October buckets, which are exactly B's October events.
    let b_october = client
        .query_one(
            "SELECT (SELECT sum(amount + extra)::text || '/' || sum(events) FROM usage_buckets
                      WHERE customer_id = $1 AND period = $2),
                    (SELECT sum(amount)::text || '/' || count(*) FROM usage_events
                      WHERE customer_id = $1 AND period = $2)",
            &[&b, &october],
        )
        .await
        .unwrap();
    assert_eq!(
        b_october.get::<_, String>(0),
        b_october.get::<_, String>(1),
        "B's October buckets"
    );
    assert_eq!(r.get::<_, i64>(1), september_events + 4, "September events");
    assert_eq!(buckets_of(&client, september).await, buckets_before);
    assert_eq!(invoice_rows(&client, september).await, september_invoices);

    // October bills them: one dated line per customer and event day, at the rated amount.
    let out = bill(&db, "2026-10", &[]);
    assert!(
        out.contains("; 4 adjustments from earlier periods)"),
        "{out}"
    );
    assert_invoices_add_up(&client, october).await;
    let amount = |i: usize| late[i].2;
    let adjustment_lines = client
        .query(
            "SELECT i.customer_id, i.number, l.description, l.event_date, l.rated, l.amount
               FROM invoice_lines l JOIN invoices i USING (number)
              WHERE l.kind = 'adjustment' ORDER BY i.customer_id, l.line_no",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(i64, String, Option<NaiveDate>, Decimal, Decimal)> = adjustment_lines
        .iter()
        .map(|r| (r.get(0), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    let line = |customer: i64, d: &str, events: usize, rated: Decimal| {
        (
            customer,
            format!(
                "Late usage of {d} ({events} event{})",
                if events == 1 { "" } else { "s" }
            ),
            Some(day(d)),
            rated,
            rated.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
        )
    };
    assert_eq!(
        got,
        [
            line(a, "2026-09-12", 1, amount(2)),
            line(a, "2026-09-30", 2, amount(0) + amount(1)),
            line(b, "2026-09-20", 1, amount(3)),
        ],
        "adjustment lines of every invoice"
    );
    let numbers: BTreeMap<i64, String> = adjustment_lines
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let october_numbers: BTreeMap<i64, String> = client
        .query(
            "SELECT customer_id, number FROM invoices WHERE period = $1 AND customer_id = ANY($2)",
            &[&october, &vec![a, b]],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        numbers, october_numbers,
        "the lines are on the October invoices"
    );
    let billed = late_rows(&client, &topic, first_offset).await;
    assert_eq!(
        billed.iter().map(|l| l.7.clone()).collect::<Vec<_>>(),
        [a, a, a, b]
            .iter()
            .map(|c| Some(october_numbers[c].clone()))
            .collect::<Vec<_>>(),
        "billed_on"
    );

    // A replay of the whole topic finds every record stored: no new adjustment, nothing
    // billed changes.
    let adjustments_before: Vec<String> = client
        .query("SELECT a::text FROM rating_adjustments a ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let october_invoices = invoice_rows(&client, october).await;
    let usage_before = usage_fingerprint(&client).await;
    replay_ok(&db, &topic, "billing", &["--to-offset", "0"]);
    drain(&db.url, &topic, "billing");
    let adjustments_after: Vec<String> = client
        .query("SELECT a::text FROM rating_adjustments a ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(adjustments_after, adjustments_before);
    assert_eq!(usage_fingerprint(&client).await, usage_before);
    assert_eq!(invoice_rows(&client, september).await, september_invoices);
    assert_eq!(invoice_rows(&client, october).await, october_invoices);
    assert_eq!(buckets_of(&client, september).await, buckets_before);

    // November owes nothing from before.
    // (It has not ended yet: closing it takes --force.)
    let out = bill(&db, "2026-11", &["--force"]);
    assert!(
        out.contains("; 0 adjustments from earlier periods)"),
        "{out}"
    );
    let n = assert_invoices_add_up(&client, november).await;
    assert_eq!(n, active_customers(&client, november).await.len());
    let adjustment_lines: i64 = client
        .query_one(
            "SELECT count(*) FROM invoice_lines l JOIN invoices i USING (number)
              WHERE l.kind = 'adjustment' AND i.period <> $1",
            &[&october],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(adjustment_lines, 0, "adjustment lines outside October");
    let total: i64 = client
        .query_one("SELECT count(*) FROM invoices", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(all_seqs(&client).await, (1..=total).collect::<Vec<_>>());
}

/// The customers table as billing sees it.
async fn customers(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT (customer_id, msisdn, name, plan, region, is_student, activated_on,
                     credit_limit)::text
               FROM customers ORDER BY customer_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Count and fingerprint of the stored usage: ids, customers, periods, amounts.
async fn usage_fingerprint(client: &tokio_postgres::Client) -> String {
    client
        .query_one(
            "SELECT count(*)::text || ':' || md5(string_agg(
                    record_id || customer_id || period || amount, ',' ORDER BY record_id))
               FROM usage_events",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// (number, document without issued_at) of a period's invoices, in number order.
async fn documents(client: &tokio_postgres::Client, period: NaiveDate) -> Vec<(String, String)> {
    client
        .query(
            "SELECT number, document FROM invoices WHERE period = $1 ORDER BY seq",
            &[&period],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let mut doc: serde_json::Value = serde_json::from_str(r.get::<_, &str>(1)).unwrap();
            assert!(doc.as_object_mut().unwrap().remove("issued_at").is_some());
            (r.get(0), serde_json::to_string(&doc).unwrap())
        })
        .collect()
}

/// The same records into two databases with the same customers: once in order on one
/// partition, once reversed over three partitions with some sent twice. The invoices are
/// the same to the byte, but for the time they were issued.
#[tokio::test(flavor = "multi_thread")]
async fn order_partitioning_and_duplicates_do_not_change_an_invoice() {
    let dir = tempdir();
    let (db_a, db_b) = (TestDb::new().await, TestDb::new().await);
    let file = dir.join("records.jsonl");
    for (db, out) in [(&db_a, file.clone()), (&db_b, dir.join("unused.jsonl"))] {
        let out = out.display().to_string();
        let (code, stdout, err) = cdrflow(&[
            "generate",
            "--output",
            &out,
            "--count",
            "2000",
            "--seed",
            "34",
            "--customers",
            "500",
            "--database-url",
            &db.url,
            "--start",
            "2026-09-01",
            "--days",
            "30",
        ]);
        assert_eq!(code, 0, "generate failed:\n{stdout}{err}");
    }
    let (client_a, client_b) = (db_a.client().await, db_b.client().await);
    let pool = customers(&client_a).await;
    assert_eq!(pool.len(), 500);
    assert_eq!(
        customers(&client_b).await,
        pool,
        "the same customers, ids included"
    );

    let text = std::fs::read_to_string(&file).unwrap();
    let records: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
    assert_eq!(records.len(), 2000);
    let topic_a = topic("cdr.raw.billorder.a", 1).await;
    let payloads: Vec<(Option<&[u8]>, Vec<u8>)> =
        records.iter().map(|r| (None, r.to_vec())).collect();
    produce_raw(&topic_a, 0, &payloads);

    // B: reversed, spread over three partitions by position, every 7th record sent again
    // at the far end of another partition.
    let topic_b = topic("cdr.raw.billorder.b", 3).await;
    let mut by_partition: BTreeMap<i32, Vec<(Option<&[u8]>, Vec<u8>)>> = BTreeMap::new();
    let mut resent = 0;
    for (i, r) in records.iter().rev().enumerate() {
        by_partition
            .entry((i % 3) as i32)
            .or_default()
            .push((None, r.to_vec()));
    }
    for (i, r) in records.iter().enumerate().step_by(7) {
        by_partition
            .entry((i % 3) as i32)
            .or_default()
            .push((None, r.to_vec()));
        resent += 1;
    }
    for (p, payloads) in &by_partition {
        produce_raw(&topic_b, *p, payloads);
    }

    drain(&db_a.url, &topic_a, "billing");
    // B also in batches of a few dozen records: the buckets are built from many more,
    // smaller, interleaved upserts.
    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic_b,
        group: "billing",
        database_url: &db_b.url,
        idle_secs: Some(3),
        extra: vec!["--batch-size".into(), "37".into()],
    });
    assert!(
        daemon.wait(Duration::from_secs(120)).success(),
        "daemon failed: {}",
        daemon.log_text()
    );
    let (s_a, s_b) = (stats(&db_a.url, "billing"), stats(&db_b.url, "billing"));
    assert_eq!(s_a["totals"]["consumed"], 2000);
    assert_eq!(s_b["totals"]["consumed"], 2000 + resent);
    assert_eq!(
        usage_fingerprint(&client_a).await,
        usage_fingerprint(&client_b).await,
        "the same usage"
    );

    for period in ["2026-09", "2026-10"] {
        bill(&db_a, period, &[]);
        bill(&db_b, period, &[]);
    }
    for period in [day("2026-09-01"), day("2026-10-01")] {
        let (a, b) = (
            documents(&client_a, period).await,
            documents(&client_b, period).await,
        );
        assert_eq!(a.len(), active_customers(&client_a, period).await.len());
        assert_eq!(a.len(), b.len(), "{period}: invoices");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "{period}: invoice documents");
        }
        assert_invoices_add_up(&client_a, period).await;
    }
}

/// A daemon that starts with buckets already stored knows none of their keys, so it first
/// tries to copy them in as new (`KnownBuckets`): the copy must fail on the stored ones and
/// the deltas be added to them instead. The first daemon is stopped part-way through the
/// month; the second one finishes it, adding to buckets it did not write.
#[tokio::test(flavor = "multi_thread")]
async fn buckets_stored_before_a_start_are_added_to_not_overwritten() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.known", 2).await;
    let report = generate(&topic, &db, 16_000, 43, &[]);
    let client = db.client().await;
    let mut first = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "known",
        database_url: &db.url,
        idle_secs: None,
        // Small batches one at a time, so that it is stopped long before the end.
        extra: ["--batch-size", "50", "--max-inflight", "1"]
            .map(String::from)
            .to_vec(),
    });
    wait_for("a first part committed", Duration::from_secs(120), || {
        stats(&db.url, "known")["stored_rows"]["usage_events"]
            .as_u64()
            .is_some_and(|n| n >= 1_000)
    });
    first.stop();
    let before: BTreeMap<String, i64> = bucket_events(&client).await;
    let stopped_at = stats(&db.url, "known")["stored_rows"]["usage_events"].clone();
    assert!(
        stopped_at.as_u64() < Some(report.expected.accepted),
        "the first daemon must leave usage to the second: {stopped_at}"
    );

    drain(&db.url, &topic, "known");
    let s = stats(&db.url, "known");
    assert_eq!(s["stored_rows"]["usage_events"], report.expected.accepted);
    let after = bucket_events(&client).await;
    let grown = before
        .iter()
        .filter(|(k, events)| after.get(*k).is_some_and(|a| a > events))
        .count();
    assert!(grown > 100, "buckets the second daemon added to: {grown}");
    assert!(before.keys().all(|k| after.contains_key(k)));
    // Every customer's buckets are exactly their events: nothing lost, nothing twice.
    let mismatched: Vec<String> = client
        .query(
            "SELECT customer_id || ' ' || period || ': buckets ' || coalesce(b.a::text, '-') || '/'
                    || coalesce(b.e::text, '-') || ', usage ' || coalesce(u.a::text, '-') || '/'
                    || coalesce(u.e::text, '-')
               FROM (SELECT customer_id, period, sum(amount + extra) AS a, sum(events) AS e
                       FROM usage_buckets GROUP BY 1, 2) b
               FULL JOIN (SELECT customer_id, period, sum(amount) AS a, count(*) AS e
                            FROM usage_events GROUP BY 1, 2) u USING (customer_id, period)
              WHERE b.a IS DISTINCT FROM u.a OR b.e IS DISTINCT FROM u.e",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(mismatched, Vec::<String>::new());
}

/// Each bucket's event count, by its key.
async fn bucket_events(client: &tokio_postgres::Client) -> BTreeMap<String, i64> {
    client
        .query(
            "SELECT concat_ws(' ', customer_id, period, tariff_id, band, catalog_version), events
               FROM usage_buckets",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}
