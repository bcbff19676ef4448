//! `cdrflow replay --rerate` against the real database, broker and daemon, where it meets
//! billing: pricing a stored event again with the catalog it was priced with changes
//! nothing, late events of closed periods included; a period being closed and its events
//! being priced again never interleave; and a rerate replay prices with the catalog
//! active when it was asked for, even if the running daemon has not seen it yet.

use crate::helpers::*;
use rust_decimal::Decimal;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `cdrflow bill --period PERIOD` on `db`, which must succeed.
fn bill(db: &TestDb, period: &str) {
    let (code, out, err) = cdrflow(&["bill", "--period", period, "--database-url", &db.url]);
    assert_eq!(code, 0, "bill {period} failed:\n{out}{err}");
}

/// `cdrflow catalog apply` of `text`, which must succeed.
fn apply_catalog(db: &TestDb, text: &str) {
    let file = tempdir().join("catalog.toml");
    std::fs::write(&file, text).unwrap();
    let (code, out, err) = cdrflow(&[
        "catalog",
        "apply",
        file.to_str().unwrap(),
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Everything a rerate with an unchanged catalog must leave as it is: every usage row,
/// every adjustment, every bucket and every invoice line.
async fn books(client: &tokio_postgres::Client) -> Vec<String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT count(*)::text || ':' || md5(string_agg(u::text, ',' ORDER BY record_id))
           FROM usage_events u",
        "SELECT count(*)::text || ':' || coalesce(md5(string_agg(
                (record_id, customer_id, period, catalog_version, old_amount, new_amount,
                 delta, in_place, kind, billed_on)::text, ',' ORDER BY id)), '')
           FROM rating_adjustments",
        "SELECT count(*)::text || ':' || md5(string_agg(b::text, ',' ORDER BY customer_id,
                period, tariff_id, band, catalog_version))
           FROM usage_buckets b",
        "SELECT count(*)::text || ':' || md5(string_agg(l::text, ',' ORDER BY number, line_no))
           FROM invoice_lines l",
    ] {
        out.push(client.query_one(sql, &[]).await.unwrap().get(0));
    }
    out
}

/// The stored amount of the record at `offset` of `topic`, the sum of its adjustments and
/// their number.
async fn late_call(
    client: &tokio_postgres::Client,
    topic: &str,
    offset: i64,
) -> (Decimal, Decimal, i64) {
    let r = client
        .query_one(
            "SELECT u.amount, coalesce(sum(a.delta), 0), count(a.id)
               FROM usage_events u LEFT JOIN rating_adjustments a USING (record_id)
              WHERE u.src_topic = $1 AND u.src_offset = $2
              GROUP BY u.record_id, u.amount",
            &[&topic, &offset],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

/// A call that arrived after its month was billed is owed, as a late adjustment, at its
/// price. Replaying the topic with --rerate and the catalog it was priced with, twice,
/// leaves it owed at its price and changes nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn a_rerate_with_an_unchanged_catalog_leaves_a_late_call_owed_at_its_price() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.reratelate", 1).await;
    let group = &format!("rerate-late-{}", suffix());
    generate(&topic, &db, 400, 41, &[]);
    drain(&db.url, &topic, group);
    bill(&db, "2026-09");
    let client = db.client().await;
    let msisdn: String = client
        .query_one(
            "SELECT msisdn FROM customers ORDER BY customer_id LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let late = serde_json::json!({"record_type": "voice", "timestamp": "2026-09-30T10:00:00+01:00",
        "caller_id": msisdn, "callee_id": "+212661234567", "duration_sec": 125,
        "cell_id": "CASABLANCA_1", "technology": "4G"});
    let offset = end_offsets(&topic)[&0];
    produce_raw(&topic, 0, &[(None, serde_json::to_vec(&late).unwrap())]);
    drain(&db.url, &topic, group);

    let (amount, owed, adjustments) = late_call(&client, &topic, offset).await;
    assert!(amount > Decimal::ZERO);
    assert_eq!((owed, adjustments), (amount, 1), "owed once, at its price");
    let before = books(&client).await;

    for round in 1..=2 {
        replay_ok(&db, &topic, group, &["--to-offset", "0", "--rerate"]);
        drain(&db.url, &topic, group);
        let (_, owed, _) = late_call(&client, &topic, offset).await;
        assert_eq!(
            owed, amount,
            "the late call is still owed at its price (round {round})"
        );
        assert_eq!(
            books(&client).await,
            before,
            "nothing changed (round {round})"
        );
    }
    let rerated: i64 = client
        .query_one(
            "SELECT coalesce(sum(records), 0)::int8 FROM pipeline_counters
              WHERE group_id = $1 AND outcome = 'duplicate'",
            &[group],
        )
        .await
        .unwrap()
        .get(0);
    assert!(rerated > 0, "the replays went through the stored events");
}

/// The shipped catalog with every plan's domestic SMS at `price`, under its own label.
fn sms_at(price: &str) -> String {
    let lines: Vec<&str> = DEFAULT_CATALOG.lines().collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let domestic_sms = i >= 2
            && lines[i - 2] == "service = \"sms\""
            && lines[i - 1] == "zone = \"domestic\""
            && line.starts_with("prices = ");
        if domestic_sms {
            out.push_str(&format!(
                "prices = {{ peak = \"{price}\", offpeak = \"{price}\", weekend = \"{price}\" }}"
            ));
        } else if line.starts_with("label = ") {
            out.push_str(&format!("label = \"domestic SMS at {price}\""));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert!(
        out.contains(&format!("peak = \"{price}\"")),
        "no domestic SMS tariff"
    );
    out
}

/// Every row of a period's usage, buckets and invoices (with their lines).
async fn period_books(client: &tokio_postgres::Client, period: &str) -> Vec<String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT count(*)::text || ':' || md5(string_agg(u::text, ',' ORDER BY record_id))
           FROM usage_events u WHERE period = $1::text::date",
        "SELECT count(*)::text || ':' || md5(string_agg(b::text, ',' ORDER BY customer_id,
                tariff_id, band, catalog_version))
           FROM usage_buckets b WHERE period = $1::text::date",
        "SELECT count(*)::text || ':' || coalesce(md5(string_agg(i::text || l::text, ','
                ORDER BY l.number, l.line_no)), '')
           FROM invoices i JOIN invoice_lines l USING (number) WHERE i.period = $1::text::date",
    ] {
        out.push(client.query_one(sql, &[&period]).await.unwrap().get(0));
    }
    out
}

/// Sessions of the test's database waiting for a lock in a statement starting with
/// `statement` (after its comment lines).
async fn waiting_in(client: &tokio_postgres::Client, statement: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'
                AND regexp_replace(query, '^(\\s*--[^\\n]*\\n)*\\s*', '') LIKE $1 || '%'",
            &[&statement],
        )
        .await
        .unwrap()
        .get(0)
}

/// A rerate batch that finds a period open and prices its events again in place, and
/// `cdrflow bill` closing that period, never interleave: the close waits for the batch to
/// commit, so the invoices are made of the prices the batch left, and nothing of the
/// period changes after they are issued.
#[tokio::test(flavor = "multi_thread")]
async fn closing_a_period_waits_for_a_rerate_batch_pricing_its_events_in_place() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.reratebill", 1).await;
    let group = &format!("rerate-bill-{}", suffix());
    generate(&topic, &db, 300, 42, &[]);
    drain(&db.url, &topic, group);
    apply_catalog(&db, &sms_at("0.31"));
    replay_ok(&db, &topic, group, &["--to-offset", "0", "--rerate"]);

    // Hold September's usage rows, so that the rerate batch stops at its in-place update,
    // after it has decided that the period is open.
    let mut holder = db.client().await;
    let hold = holder.transaction().await.unwrap();
    hold.execute(
        "SELECT 1 FROM usage_events WHERE period = '2026-09-01' FOR UPDATE",
        &[],
    )
    .await
    .unwrap();
    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group,
        database_url: &db.url,
        idle_secs: Some(3),
        // The whole replayed range in one batch, which the test holds in one place.
        extra: ["--batch-linger-ms", "1000"].map(String::from).to_vec(),
    });
    let client = db.client().await;
    let started = Instant::now();
    while waiting_in(&client, "UPDATE usage_events").await == 0 {
        assert!(daemon.alive(), "daemon died: {}", daemon.log_text());
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the rerate batch never reached its update: {}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut bill = Command::new(BIN)
        .args(["bill", "--period", "2026-09", "--database-url", &db.url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Either the close waits for the batch, or the bill runs to its end meanwhile: then
    // what it invoiced is what the batch is about to change.
    let started = Instant::now();
    let mut billed = None;
    loop {
        if bill.try_wait().unwrap().is_some() {
            billed = Some(period_books(&client, "2026-09-01").await);
            break;
        }
        if waiting_in(&client, "UPDATE billing_periods").await > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the bill neither finished nor waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hold.rollback().await.unwrap();
    let out = bill.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "bill failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let billed = match billed {
        Some(b) => b,
        None => period_books(&client, "2026-09-01").await,
    };
    assert!(
        daemon.wait(Duration::from_secs(120)).success(),
        "{}",
        daemon.log_text()
    );
    assert_eq!(
        period_books(&client, "2026-09-01").await,
        billed,
        "September changed after its invoices were issued"
    );
    // The batch went first: its new prices are what September was invoiced with.
    let stale: Vec<String> = client
        .query(
            "SELECT (u.period, u.amount, u.catalog_version, u.src_offset)::text FROM usage_events u
              WHERE record_type = 'sms' AND zone = 'domestic' AND amount <> 0.31",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        stale,
        Vec::<String>::new(),
        "every domestic SMS priced again"
    );
}

/// A catalog is applied and a rerate replay asked for at once, while the running daemon
/// still prices with the version before (it looks for a new one only every hour here):
/// every replayed event ends up priced with the new catalog, none is lost or counted
/// twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_rerate_asked_for_right_after_a_catalog_change_prices_every_event_with_it() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.reratecatalog", 2).await;
    let group = &format!("rerate-catalog-{}", suffix());
    let report = generate(&topic, &db, 2_000, 43, &[]);
    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group,
        database_url: &db.url,
        idle_secs: None,
        extra: vec!["--catalog-check-secs".into(), "3600".into()],
    });
    daemon.wait_up();
    let ends = end_offsets(&topic);
    wait_for("the topic stored", Duration::from_secs(120), || {
        stored_offsets(&db.url, group) == ends
    });
    let client = db.client().await;
    let accepted: i64 = client
        .query_one("SELECT count(*) FROM usage_events", &[])
        .await
        .unwrap()
        .get(0);

    assert_eq!(daemon.metric("cdrflow_catalog_version"), Some(1.0));
    apply_catalog(&db, &sms_at("0.31"));
    let out = replay_ok(&db, &topic, group, &["--to-offset", "0", "--rerate"]);
    let replayed: i64 = ends.values().sum();
    assert!(
        out.contains(&format!("{replayed} records to replay")),
        "{out}"
    );
    // A record on each partition, so that the daemon meets the rewind now.
    for p in ends.keys() {
        produce_raw(
            &topic,
            *p,
            &[(None, br#"{"record_type": "ping"}"#.to_vec())],
        );
    }
    let ends = end_offsets(&topic);
    let started = Instant::now();
    loop {
        let rerating: i64 = client
            .query_one(
                "SELECT count(*) FROM consumer_offsets WHERE rerate_below IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if rerating == 0 && stored_offsets(&db.url, group) == ends {
            break;
        }
        assert!(daemon.alive(), "daemon died: {}", daemon.log_text());
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the replay never ended: {}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let refused = daemon
        .metric("cdrflow_batch_failures_total{kind=\"catalog\"}")
        .unwrap_or(0.0);
    daemon.stop();

    let versions: Vec<(i32, i64)> = client
        .query(
            "SELECT catalog_version, count(*) FROM usage_events GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        versions,
        [(2, accepted)],
        "every event priced with version 2"
    );
    let prices: Vec<Decimal> = client
        .query(
            "SELECT DISTINCT amount FROM usage_events WHERE record_type = 'sms' AND zone = 'domestic'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        prices,
        [Decimal::new(31, 2)],
        "domestic SMS at the new price"
    );
    let s = stats(&db.url, group);
    assert_eq!(s["balanced"], true, "{s}");
    assert_eq!(s["totals"]["accepted"], report.expected.accepted, "{s}");
    assert_eq!(
        s["totals"]["consumed"],
        report.sent as i64 + replayed + 2,
        "each replayed record consumed once: {s}"
    );
    assert!(
        refused >= 1.0,
        "the daemon priced the first replayed batches with version 1 and had them refused"
    );
}
