use crate::helpers::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Postgres goes away for 12 s in the middle of a stream: the daemon keeps running,
/// stops fetching (in-flight batches stay bounded), retries with back-off, and finishes
/// with nothing lost or doubled.
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_outage_mid_stream_loses_and_doubles_nothing() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.outage", 2).await;
    let proxy = Arc::new(PgProxy::start().await);

    let gen = spawn_generate(
        &topic,
        &db.url,
        40_000,
        9,
        vec!["--rate".into(), "2500".into()],
    );

    let max_inflight = 3;
    let daemon_url = db.url_via(proxy.port);
    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "outage",
        database_url: &daemon_url,
        idle_secs: Some(5),
        extra: vec![
            "--max-inflight".into(),
            max_inflight.to_string(),
            "--batch-size".into(),
            "500".into(),
        ],
    });
    // Let it consume for a while, then take the database away.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = daemon
        .metric("cdrflow_records_consumed_total")
        .unwrap_or(0.0);
    assert!(
        before > 0.0,
        "nothing consumed before the outage: {}",
        daemon.log_text()
    );
    proxy.set_up(false);
    let outage = Instant::now();
    let mut saw_not_ready = false;
    let mut max_seen_inflight = 0.0f64;
    while outage.elapsed() < Duration::from_secs(12) {
        assert!(
            daemon.alive(),
            "daemon died during the outage: {}",
            daemon.log_text()
        );
        if let Some(v) = daemon.metric("cdrflow_inflight_batches") {
            max_seen_inflight = max_seen_inflight.max(v);
        }
        if let Some((status, _)) = daemon.get("/readyz") {
            saw_not_ready |= status == 503;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let during = daemon
        .metric("cdrflow_records_consumed_total")
        .unwrap_or(0.0);
    proxy.set_up(true);

    let report = gen.join().unwrap();
    let status = daemon.wait(Duration::from_secs(300));
    assert!(status.success(), "{}", daemon.log_text());
    let failures_line = daemon
        .log_text()
        .lines()
        .filter(|l| l.contains("Failed to commit batch"))
        .count();

    assert!(saw_not_ready, "/readyz never reported the database down");
    assert!(
        max_seen_inflight <= max_inflight as f64,
        "in-flight batches went to {max_seen_inflight}"
    );
    assert!(failures_line > 0, "the outage was never felt");
    // Nothing was committed while the database was away (a batch may have been mid-commit
    // when it went).
    assert!(
        during - before <= 500.0 * max_inflight as f64,
        "committed {} records during the outage",
        during - before
    );

    let s = stats(&db.url, "outage");
    assert_eq!(s["totals"]["consumed"], report.sent);
    assert_eq!(s["totals"]["accepted"], report.expected.accepted);
    assert_eq!(s["totals"]["duplicates"], report.expected.duplicates);
    assert_eq!(s["totals"]["suspense"], report.expected.suspense);
    assert_eq!(s["stored_rows"]["usage_events"], report.expected.accepted);
    assert_eq!(s["balanced"], true);
    assert_stored_offsets_at_end(&s, &topic);
}
