use crate::helpers::*;
use rust_decimal::Decimal;
use std::time::{Duration, Instant};

fn voice(caller: &str, local: &str, secs: u32) -> Vec<u8> {
    format!(r#"{{"record_type":"voice","timestamp":"{local}","caller_id":"{caller}","callee_id":"0612345678","duration_sec":{secs},"cell_id":"RABAT_1","technology":"4G"}}"#).into_bytes()
}

async fn usage_of(client: &tokio_postgres::Client, msisdn: &str) -> (i64, Decimal) {
    let r = client
        .query_one(
            "SELECT count(*), COALESCE(sum(amount), 0) FROM usage_events WHERE msisdn = $1",
            &[&msisdn],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

/// Wait until `msisdn` has `n` usage rows, failing with the daemon's log after a minute.
async fn wait_for_usage(client: &tokio_postgres::Client, msisdn: &str, n: i64, daemon: &Daemon) {
    let started = Instant::now();
    while usage_of(client, msisdn).await.0 < n {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Records of an unknown subscriber are held; once the subscriber is imported they are
/// rated, once, with the amounts the catalog gives; importing again or receiving the
/// same records again adds nothing.
#[tokio::test(flavor = "multi_thread")]
async fn held_records_are_rated_exactly_once_when_their_subscriber_is_imported() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.suspense", 2).await;
    let sms = br#"{"record_type":"sms","timestamp":"2026-10-10T12:00:00","sender_id":"0699000001","receiver_id":"0612345678","cell_id":"RABAT_1","technology":"4G"}"#.to_vec();
    let records = vec![
        // Wednesday 10:00 local, peak: business 60/1, 90 s × 0.70/min = 1.050000.
        (None, voice("0699000001", "2026-10-07T10:00:00", 90)),
        // Saturday, weekend: business SMS 0.150000.
        (None, sms.clone()),
        // The same SMS again: a duplicate, held once.
        (None, sms.clone()),
        // Thursday 21:00, offpeak: 1.5 MB = 1536 KB × 0.05/MB ÷ 1024 = 0.075000.
        (None, br#"{"record_type":"data","timestamp":"2026-10-08T21:00:00","user_id":"0699000001","data_volume_mb":1.5,"session_duration_sec":600,"cell_id":"RABAT_1","technology":"4G"}"#.to_vec()),
    ];
    let records: Vec<(Option<&[u8]>, Vec<u8>)> = records;
    produce_raw(&topic, 0, &records);
    drain(&db.url, &topic, "suspense");
    let client = db.client().await;
    let held: i64 = client
        .query_one("SELECT count(*) FROM suspense_records WHERE resolved_at IS NULL AND msisdn = '+212699000001'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 3, "three distinct records are held");
    assert_eq!(usage_of(&client, "+212699000001").await.0, 0);
    let s = stats(&db.url, "suspense");
    assert_eq!(s["totals"]["suspense"], 3);
    assert_eq!(s["totals"]["duplicates"], 1);

    let import = || {
        import_customers(
            &db,
            "0699000001,Nadia Alaoui,business,Rabat-Sale-Kenitra,no,2019-03-01,2000\n",
        )
    };
    let first = import();
    assert!(first.contains("1 added"), "{first}");
    assert!(first.contains("suspense: 3 record(s) rated"), "{first}");
    let (n, amount) = usage_of(&client, "+212699000001").await;
    assert_eq!(n, 3);
    assert_eq!(amount, "1.275".parse::<Decimal>().unwrap());
    let amounts: Vec<(String, Decimal, String)> = client
        .query(
            "SELECT record_type, amount, band FROM usage_events WHERE msisdn = '+212699000001' ORDER BY record_type",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        amounts,
        vec![
            ("data".into(), "0.075".parse().unwrap(), "offpeak".into()),
            ("sms".into(), "0.15".parse().unwrap(), "weekend".into()),
            ("voice".into(), "1.05".parse().unwrap(), "peak".into()),
        ]
    );

    // Exactly once: a second import rates nothing, and the same records arriving again
    // are duplicates of stored usage.
    let second = import();
    assert!(
        second.contains("0 added") && second.contains("1 unchanged"),
        "{second}"
    );
    assert!(second.contains("suspense: 0 record(s) rated"), "{second}");
    produce_raw(&topic, 1, &records);
    drain(&db.url, &topic, "suspense");
    assert_eq!(
        usage_of(&client, "+212699000001").await,
        (3, "1.275".parse().unwrap())
    );
    let s = stats(&db.url, "suspense");
    assert_eq!(s["totals"]["consumed"], 8);
    assert_eq!(
        s["totals"]["duplicates"], 5,
        "1 in the first run, all 4 in the second"
    );
    assert_eq!(s["balanced"], true);
    let totals: Decimal = client
        .query_one(
            "SELECT sum(t.amount) FROM customer_period_totals t JOIN customers c USING (customer_id) WHERE c.msisdn = '+212699000001'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(totals, "1.275".parse().unwrap());
}

/// The running daemon releases held records by itself once the subscriber exists.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_rates_held_records_once_the_subscriber_appears() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.suspense-daemon", 1).await;
    // Wednesday 19:59:30 local, 60 s on basic (60/60, connection 0.10): 30 s peak
    // (0.90 × 30/60 = 0.45) + 30 s offpeak (0.45 × 30/60 = 0.225) + 0.10 = 0.775.
    produce_raw(
        &topic,
        0,
        &[(None, voice("0699000002", "2026-10-07T19:59:30", 60))],
    );
    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "suspense-daemon",
        database_url: &db.url,
        idle_secs: None,
        extra: vec!["--suspense-interval-secs".into(), "1".into()],
    });
    let client = db.client().await;
    let held_query = "SELECT count(*) FROM suspense_records WHERE msisdn = '+212699000002'";
    let started = Instant::now();
    while client
        .query_one(held_query, &[])
        .await
        .unwrap()
        .get::<_, i64>(0)
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client
        .execute(
            "INSERT INTO customers (msisdn, name, plan, activated_on) VALUES ('+212699000002', 'Karim Tazi', 'basic', '2020-01-01')",
            &[],
        )
        .await
        .unwrap();
    wait_for_usage(&client, "+212699000002", 1, &daemon).await;
    assert_eq!(
        usage_of(&client, "+212699000002").await,
        (1, "0.775".parse().unwrap())
    );
    let resolution: String = client
        .query_one("SELECT resolution FROM suspense_records WHERE msisdn = '+212699000002' AND resolved_at IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(resolution, "rated");
    assert_eq!(
        daemon.metric("cdrflow_suspense_resolved_total{resolution=\"rated\"}"),
        Some(1.0)
    );
    daemon.stop();
}

/// The Rater keeps the subscribers it found until customers change: a change of plan
/// made while the daemon runs (here by SQL, as an operator's script would) is in force for
/// the records rated after it, although the subscriber was found before it.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_of_plan_is_in_force_for_records_rated_after_it() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.plan-change", 1).await;
    let client = db.client().await;
    client
        .execute(
            "INSERT INTO customers (msisdn, name, plan, activated_on) VALUES ('+212699000003', 'Salma Idrissi', 'basic', '2020-01-01')",
            &[],
        )
        .await
        .unwrap();
    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "plan-change",
        database_url: &db.url,
        idle_secs: None,
        extra: vec![],
    });
    // Once the daemon has read the change counter (at start, then every second), what
    // it looks up is kept.
    daemon.wait_up();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Wednesday 10:00 local, 90 s: rated on basic, and the subscriber is now known.
    produce_raw(
        &topic,
        0,
        &[(None, voice("0699000003", "2026-10-07T10:00:00", 90))],
    );
    wait_for_usage(&client, "+212699000003", 1, &daemon).await;
    client
        .execute(
            "UPDATE customers SET plan = 'business' WHERE msisdn = '+212699000003'",
            &[],
        )
        .await
        .unwrap();
    // The Rater reads the change counter every second.
    tokio::time::sleep(Duration::from_secs(4)).await;
    produce_raw(
        &topic,
        0,
        &[(None, voice("0699000003", "2026-10-07T11:00:00", 90))],
    );
    wait_for_usage(&client, "+212699000003", 2, &daemon).await;
    let plans: Vec<(String, String, Decimal)> = client
        .query(
            "SELECT to_char(event_time AT TIME ZONE 'Africa/Casablanca', 'HH24:MI'), plan, amount
               FROM usage_events WHERE msisdn = '+212699000003' ORDER BY event_time",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(plans[0].0, "10:00");
    assert_eq!(plans[0].1, "basic");
    // Business, peak, 60/1: 90 s × 0.70/min = 1.050000.
    assert_eq!(
        plans[1],
        ("11:00".into(), "business".into(), "1.05".parse().unwrap())
    );
    daemon.stop();
}

/// A held record that reaches usage by the batch path once its subscriber exists (here the
/// same record sent again before any resolver ran) is resolved as already stored: usage
/// and the buckets hold it once, and the held copy is marked `duplicate`.
#[tokio::test(flavor = "multi_thread")]
async fn a_held_record_that_reached_usage_another_way_is_resolved_as_already_stored() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.suspense-dup", 1).await;
    let record: Vec<(Option<&[u8]>, Vec<u8>)> =
        vec![(None, voice("0699000004", "2026-10-07T10:00:00", 90))];
    // The daemon's own resolver must not run: the import's pass below is the one tested.
    let run = || {
        let mut d = Daemon::start(&DaemonConfig {
            topic: &topic,
            group: "suspense-dup",
            database_url: &db.url,
            idle_secs: Some(3),
            extra: vec!["--suspense-interval-secs".into(), "3600".into()],
        });
        assert!(
            d.wait(Duration::from_secs(300)).success(),
            "{}",
            d.log_text()
        );
    };
    produce_raw(&topic, 0, &record);
    run();
    let client = db.client().await;
    let open = "SELECT count(*) FROM suspense_records WHERE msisdn = '+212699000004' AND resolved_at IS NULL";
    let held: i64 = client.query_one(open, &[]).await.unwrap().get(0);
    assert_eq!(held, 1);

    // The subscriber appears (by SQL: no resolution pass), then the record comes again.
    client
        .execute(
            "INSERT INTO customers (msisdn, name, plan, activated_on) VALUES ('+212699000004', 'Youssef Amrani', 'business', '2020-01-01')",
            &[],
        )
        .await
        .unwrap();
    produce_raw(&topic, 0, &record);
    run();
    // Business, peak, 60/1: 90 s × 0.70/min = 1.050000.
    assert_eq!(
        usage_of(&client, "+212699000004").await,
        (1, "1.05".parse().unwrap())
    );
    let held: i64 = client.query_one(open, &[]).await.unwrap().get(0);
    assert_eq!(held, 1, "the held copy is still open");

    let out = import_customers(
        &db,
        "0699000004,Youssef Amrani,business,Rabat-Sale-Kenitra,no,2019-03-01,2000\n",
    );
    assert!(
        out.contains("suspense: 0 record(s) rated, 1 already stored"),
        "{out}"
    );
    assert_eq!(
        usage_of(&client, "+212699000004").await,
        (1, "1.05".parse().unwrap())
    );
    let r = client
        .query_one(
            "SELECT s.resolution,
                    (SELECT sum(b.events)::int8 FROM usage_buckets b JOIN customers c USING (customer_id)
                      WHERE c.msisdn = '+212699000004')
               FROM suspense_records s WHERE s.msisdn = '+212699000004'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, Option<String>>(0).as_deref(), Some("duplicate"));
    assert_eq!(
        r.get::<_, Option<i64>>(1),
        Some(1),
        "one event in the buckets"
    );
}
