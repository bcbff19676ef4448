use crate::helpers::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Batches of 2,000 records, which weigh about 3 MB each in flight: five or six fit.
const BATCH: u64 = 2000;

/// With a backlog waiting and Postgres gone, the source fills the pipeline up to what
/// `--memory-mb` allows in bytes, far below what the count of batches alone would let in,
/// and nothing is lost or doubled once Postgres is back.
#[tokio::test(flavor = "multi_thread")]
async fn batches_in_flight_stay_within_the_memory_budget_when_postgres_stalls() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.memory", 2).await;
    let proxy = Arc::new(PgProxy::start().await);
    // 60,000 records: 30 batches, within the 32 batches `--max-inflight` allows.
    let report = generate(&topic, &db, 60_000, 11, &[]);

    let daemon_url = db.url_via(proxy.port);
    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "memory",
        database_url: &daemon_url,
        idle_secs: Some(5),
        extra: vec![
            "--memory-mb".into(),
            "64".into(),
            "--batch-size".into(),
            BATCH.to_string(),
        ],
    });
    // Take the database away once the first batch is committed.
    let started = Instant::now();
    while daemon
        .metric("cdrflow_batches_committed_total")
        .unwrap_or(0.0)
        < 1.0
    {
        assert!(daemon.alive(), "{}", daemon.log_text());
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing committed: {}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.set_up(false);
    let outage = Instant::now();
    let (mut most_bytes, mut most_batches) = (0.0f64, 0.0f64);
    while outage.elapsed() < Duration::from_secs(10) {
        assert!(daemon.alive(), "{}", daemon.log_text());
        if let Some(v) = daemon.metric("cdrflow_inflight_bytes") {
            most_bytes = most_bytes.max(v);
        }
        if let Some(v) = daemon.metric("cdrflow_inflight_batches") {
            most_batches = most_batches.max(v);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let limit = daemon
        .metric("cdrflow_inflight_bytes_limit")
        .expect("the limit is exported");
    proxy.set_up(true);

    // Twelve 64ths of 64 MB go to batches in flight.
    assert_eq!(limit, (12 << 20) as f64);
    let one_batch = most_bytes / most_batches.max(1.0);
    assert!(
        (2.0e6..5.0e6).contains(&one_batch),
        "a batch weighs {one_batch} bytes"
    );
    // The bytes bound held: reached, and overshot by one batch at most.
    assert!(
        most_bytes >= limit - one_batch && most_bytes < limit + one_batch,
        "in flight: {most_bytes} bytes in {most_batches} batches, limit {limit}"
    );
    assert!(
        most_batches < 12.0,
        "{most_batches} batches in flight: the count bound, not the bytes, held them"
    );

    let status = daemon.wait(Duration::from_secs(300));
    assert!(status.success(), "{}", daemon.log_text());
    let s = stats(&db.url, "memory");
    assert_eq!(s["totals"]["consumed"], report.sent);
    assert_eq!(s["totals"]["accepted"], report.expected.accepted);
    assert_eq!(s["totals"]["duplicates"], report.expected.duplicates);
    assert_eq!(s["stored_rows"]["usage_events"], report.expected.accepted);
    assert_eq!(s["balanced"], true);
    assert_stored_offsets_at_end(&s, &topic);
}

/// A budget too small to run in is refused before anything starts, naming the flag.
#[test]
fn a_memory_budget_below_the_minimum_is_refused_naming_the_flag() {
    let (code, _, err) = cdrflow(&["run", "--memory-mb", "32"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--memory-mb") && err.contains("32 is not in 64..=1048576"),
        "{err}"
    );
}

/// Once a month is closed, what the daemon remembers of it (the bucket keys its
/// committers wrote, the customer months with every alert raised) is dropped, while the
/// daemon keeps running.
#[tokio::test(flavor = "multi_thread")]
async fn what_the_daemon_remembers_of_a_month_is_dropped_once_the_month_is_closed() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.closed", 1).await;
    let report = generate(&topic, &db, 5_000, 12, &[]);
    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "closed",
        database_url: &db.url,
        idle_secs: None,
        extra: vec![],
    });
    let bucket_keys = r#"cdrflow_cache_entries{cache="bucket_keys"}"#;
    let settled = r#"cdrflow_cache_entries{cache="settled_months"}"#;
    // The keys are counted every 10 s, once everything is committed.
    let until = |daemon: &mut Daemon, what: &str, done: &dyn Fn(&Daemon) -> bool| {
        let started = Instant::now();
        while !done(daemon) {
            assert!(daemon.alive(), "{}", daemon.log_text());
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{what}: {}",
                daemon.get("/metrics").map(|(_, b)| b).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    until(
        &mut daemon,
        "the stream committed and its keys counted",
        &|d| {
            d.metric("cdrflow_records_consumed_total") == Some(report.sent as f64)
                && d.metric(bucket_keys).unwrap_or(0.0) > 0.0
        },
    );
    let keys_held = daemon.metric(bucket_keys).unwrap();
    let settled_held = daemon.metric(settled).unwrap();
    // The stream has a few events of August and October (time zones, late records):
    // their months stay open, and so do their keys.
    let client = db.client().await;
    let count = |sql: &str| {
        let client = &client;
        let sql = sql.to_string();
        async move { client.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0) as f64 }
    };
    assert_eq!(keys_held, count("SELECT count(*) FROM usage_buckets").await);
    let other_months =
        count("SELECT count(*) FROM usage_buckets WHERE period <> '2026-09-01'").await;
    assert!(
        other_months < keys_held / 10.0,
        "{other_months} of {keys_held}"
    );
    assert!(
        settled_held > 0.0,
        "no customer month has every alert raised"
    );

    let (code, out, err) = cdrflow(&["bill", "--period", "2026-09", "--database-url", &db.url]);
    assert_eq!(code, 0, "{out}{err}");
    until(&mut daemon, "September's keys forgotten", &|d| {
        d.metric(bucket_keys) == Some(other_months)
    });
    let settled_left = daemon.metric(settled).unwrap();
    assert!(
        settled_left < settled_held / 2.0,
        "{settled_left} of {settled_held} left"
    );
    daemon.stop();
}

/// With more customers than the subscriber cache holds, the cache starts over while the
/// next batches have already taken what they need from it; their known subscribers are
/// still found, so no record of a known subscriber goes to suspense.
#[tokio::test(flavor = "multi_thread")]
async fn every_known_subscriber_is_rated_when_customers_outnumber_the_subscriber_cache() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.many_customers", 2).await;
    // `--memory-mb 64` keeps 39,945 subscribers; 80,000 records from 100,000 customers
    // name about 55,000 of them, so the cache fills and starts over during the backlog.
    let report = generate(&topic, &db, 80_000, 13, &["--customers", "100000"]);
    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "many",
        database_url: &db.url,
        idle_secs: Some(5),
        extra: vec![
            "--memory-mb".into(),
            "64".into(),
            "--batch-size".into(),
            BATCH.to_string(),
        ],
    });
    let status = daemon.wait(Duration::from_secs(300));
    assert!(status.success(), "{}", daemon.log_text());
    let s = stats(&db.url, "many");
    assert_eq!(s["totals"]["consumed"], report.sent);
    assert_eq!(s["totals"]["accepted"], report.expected.accepted);
    assert_eq!(s["totals"]["suspense"], report.expected.suspense);
    assert_eq!(s["totals"]["duplicates"], report.expected.duplicates);
    assert_eq!(s["balanced"], true);
}
