//! Failures inside the daemon: an actor that panics is restarted and its batch stored
//! once; a crash loop ends the process with a failure; SIGTERM is served within 10 s
//! whatever Postgres does; and what a committer remembers is not trusted once a partition
//! is read again.
//!
//! The panics are injected by a build with the `fault-injection` feature
//! (`CDRFLOW_INJECT_PANIC`), which `scripts/test.sh` builds; without it those tests are
//! not compiled.

use crate::helpers::*;
use std::time::{Duration, Instant};

fn config<'a>(topic: &'a str, group: &'a str, url: &'a str, extra: &[&str]) -> DaemonConfig<'a> {
    DaemonConfig {
        topic,
        group,
        database_url: url,
        idle_secs: None,
        extra: extra.iter().map(|s| s.to_string()).collect(),
    }
}

#[cfg(feature = "fault-injection")]
async fn usage_rows(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one("SELECT count(*) FROM usage_events", &[])
        .await
        .unwrap()
        .get(0)
}

/// Wait until the group has consumed `sent` records and its offsets are at the end.
fn wait_consumed(db: &TestDb, group: &str, sent: u64, daemon: &mut Daemon) {
    let started = Instant::now();
    loop {
        let s = stats(&db.url, group);
        if s["totals"]["consumed"] == sent && s["balanced"] == true {
            return;
        }
        assert!(daemon.alive(), "daemon died: {}", daemon.log_text());
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not consumed in time: {s}\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// SIGTERM, and the daemon exits 0 within `limit`; returns how long it took.
fn stop_within(daemon: &mut Daemon, limit: Duration) -> Duration {
    let asked = Instant::now();
    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(60));
    let took = asked.elapsed();
    assert!(status.success(), "{status}: {}", daemon.log_text());
    assert!(
        took <= limit,
        "SIGTERM served in {took:?}: {}",
        daemon.log_text()
    );
    took
}

#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread")]
async fn a_panic_in_each_actor_restarts_it_and_every_record_is_stored_once() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.panics", 2).await;
    let report = generate(&topic, &db, 8000, 31, &[]);
    let actors = [
        ("source", "source@5"),
        ("validator", "validator@2"),
        ("normalizer", "normalizer@3"),
        ("rater", "rater@4"),
        ("committer", "committer@6"),
        ("accumulator", "accumulator@2"),
        ("suspense", "suspense@1"),
        ("biller", "biller@1"),
        ("reporter", "reporter@1"),
    ];
    let plan = actors.map(|(_, at)| at).join(",");
    let mut daemon = Daemon::start_with_env(
        &brokers(),
        &config(
            &topic,
            "panics",
            &db.url,
            &[
                "--batch-size",
                "500",
                "--suspense-interval-secs",
                "1",
                "--report-refresh-secs",
                "1",
                // Due a year after a month ends: the biller looks, bills nothing.
                "--close-after-days",
                "365",
            ],
        ),
        &[("CDRFLOW_INJECT_PANIC", plan.as_str())],
    );
    daemon.wait_up();
    wait_consumed(&db, "panics", report.sent, &mut daemon);
    let restarted = |actor: &str| {
        daemon
            .metric(&format!(
                "cdrflow_actor_restarts_total{{actor=\"{actor}\"}}"
            ))
            .unwrap_or(0.0)
    };
    wait_for("every actor restarted", Duration::from_secs(30), || {
        actors.iter().all(|(actor, _)| restarted(actor) >= 1.0)
    });
    for (actor, _) in actors {
        assert_eq!(restarted(actor), 1.0, "{actor}: {}", daemon.log_text());
    }
    let (status, body) = daemon.get("/readyz").unwrap();
    assert_eq!(status, 200, "{body}");
    let log = daemon.log_text();
    for (actor, _) in actors {
        assert!(
            log.lines()
                .any(|l| l.contains("Actor failed") && l.contains(&format!("\"{actor}\""))),
            "no failure reported for the {actor}: {log}"
        );
    }
    assert!(
        log.contains("batch of") && log.contains("offsets"),
        "the failed batch is not named: {log}"
    );

    stop_within(&mut daemon, Duration::from_secs(10));
    let s = stats(&db.url, "panics");
    assert_eq!(s["totals"]["consumed"], report.sent);
    assert_eq!(s["totals"]["accepted"], report.expected.accepted);
    assert_eq!(s["totals"]["duplicates"], report.expected.duplicates);
    assert_eq!(s["stored_rows"]["usage_events"], report.expected.accepted);
    assert_eq!(usage_rows(&db).await as u64, report.expected.accepted);
    assert_eq!(s["balanced"], true);
    assert_stored_offsets_at_end(&s, &topic);
}

#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_loop_ends_the_daemon_with_a_failure_and_readyz_names_the_actor_meanwhile() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.crashloop", 2).await;
    let report = generate(&topic, &db, 2000, 32, &[]);
    let mut daemon = Daemon::start_with_env(
        &brokers(),
        &config(&topic, "crashloop", &db.url, &[]),
        &[("CDRFLOW_INJECT_PANIC", "normalizer@1+")],
    );
    let started = Instant::now();
    let mut saw_down = false;
    while daemon.alive() {
        if let Some((503, body)) = daemon.get("/readyz") {
            saw_down |= body.contains("\"actors_down\":[\"normalizer\"]");
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "still running: {}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = daemon.wait(Duration::from_secs(1));
    assert!(
        !status.success(),
        "a crash loop exited 0: {}",
        daemon.log_text()
    );
    assert!(saw_down, "/readyz never named the normalizer down");
    let log = daemon.log_text();
    assert!(log.contains("crash loop"), "{log}");
    assert!(report.sent > 0);
    assert_eq!(usage_rows(&db).await, 0, "a failing stage stored something");
    assert!(
        stored_offsets(&db.url, "crashloop")
            .values()
            .all(|o| *o == 0),
        "offsets moved past batches that were never stored"
    );
}

/// Postgres away while the daemon has batches in flight, silent while commits are under
/// way, and away while the group rebalances (stored offsets that cannot be read) or a
/// daemon starts: every SIGTERM is served within 10 s, and once Postgres is back one run
/// stores everything once.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_is_served_within_ten_seconds_while_postgres_is_down() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.sigterm", 4).await;
    let proxy = PgProxy::start().await;
    let url = db.url_via(proxy.port);
    let first = generate(&topic, &db, 20_000, 33, &[]);

    let mut a = Daemon::start(&config(&topic, "sigterm", &url, &["--batch-size", "500"]));
    a.wait_up();
    wait_for("records committed", Duration::from_secs(60), || {
        a.metric("cdrflow_records_consumed_total").unwrap_or(0.0) > 0.0
    });
    proxy.set_up(false);
    std::thread::sleep(Duration::from_secs(3));
    let took = stop_within(&mut a, Duration::from_secs(10));
    eprintln!("SIGTERM with Postgres down and batches failing: {took:?}");

    // A network that drops everything: commits hang with no error to end them. Records
    // stream in meanwhile, so batches are in flight: the same ones again (same seed),
    // duplicates that add nothing.
    proxy.set_up(true);
    let streaming = spawn_generate(
        &topic,
        &db.url,
        20_000,
        33,
        vec!["--rate".into(), "4000".into()],
    );
    let mut a = Daemon::start(&config(&topic, "sigterm", &url, &["--batch-size", "500"]));
    a.wait_up();
    wait_for("batches in flight", Duration::from_secs(60), || {
        a.metric("cdrflow_inflight_batches").unwrap_or(0.0) > 0.0
    });
    proxy.stall(true);
    std::thread::sleep(Duration::from_secs(3));
    let took = stop_within(&mut a, Duration::from_secs(10));
    eprintln!("SIGTERM with commits hanging on a silent network: {took:?}");
    proxy.stall(false);
    streaming.join().unwrap();

    // Two instances share the topic; Postgres goes away, one of them leaves, and the
    // other is given its partitions, whose stored offsets it cannot read.
    proxy.set_up(true);
    let mut b = Daemon::start(&config(&topic, "sigterm", &url, &[]));
    let mut c = Daemon::start(&config(&topic, "sigterm", &url, &[]));
    wait_for("both instances consuming", Duration::from_secs(60), || {
        [&b, &c]
            .iter()
            .all(|d| d.log_text().contains("resuming from the stored offset"))
    });
    proxy.set_up(false);
    std::thread::sleep(Duration::from_secs(2));
    let took = stop_within(&mut c, Duration::from_secs(10));
    eprintln!("SIGTERM with Postgres down: {took:?}");
    wait_for("the rebalance", Duration::from_secs(40), || {
        b.log_text()
            .contains("Failed to read the stored offsets of assigned partitions")
    });
    let took = stop_within(&mut b, Duration::from_secs(10));
    eprintln!("SIGTERM with Postgres down, partitions waiting for their offsets: {took:?}");

    // A daemon starting while Postgres is away waits for it, and stops when told to.
    let mut d = Daemon::start(&config(&topic, "sigterm", &url, &[]));
    std::thread::sleep(Duration::from_secs(3));
    let took = stop_within(&mut d, Duration::from_secs(10));
    eprintln!("SIGTERM while starting with Postgres down: {took:?}");

    proxy.set_up(true);
    let mut last = Daemon::start(&DaemonConfig {
        idle_secs: Some(5),
        ..config(&topic, "sigterm", &url, &[])
    });
    assert!(
        last.wait(Duration::from_secs(180)).success(),
        "{}",
        last.log_text()
    );
    let s = stats(&db.url, "sigterm");
    assert_eq!(s["totals"]["accepted"], first.expected.accepted);
    assert_eq!(s["stored_rows"]["usage_events"], first.expected.accepted);
    assert_eq!(s["balanced"], true);
    assert_stored_offsets_at_end(&s, &topic);
}

/// Postgres loses its last commits (a restore, a promoted replica that was behind): the
/// daemon's next batch is fenced, it reads the lost records again, and stores them again
/// instead of taking them for duplicates of what it remembers committing.
#[tokio::test(flavor = "multi_thread")]
async fn records_postgres_lost_after_their_commit_are_stored_again_when_read_again() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.lost", 1).await;
    let first = generate(&topic, &db, 3000, 34, &[]);
    let mut daemon = Daemon::start(&config(&topic, "lost", &db.url, &["--batch-size", "500"]));
    daemon.wait_up();
    wait_consumed(&db, "lost", first.sent, &mut daemon);

    // The database goes back to offset 2000 of the partition.
    let client = db.client().await;
    let lost: Vec<String> = client
        .query(
            "DELETE FROM usage_events WHERE src_offset >= 2000 RETURNING record_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        lost.len() > 500,
        "only {} rows after offset 2000",
        lost.len()
    );
    client
        .execute(
            "UPDATE consumer_offsets SET next_offset = 2000 WHERE group_id = 'lost'",
            &[],
        )
        .await
        .unwrap();

    // More traffic: the daemon's next batch starts at 3000, is fenced, and reads from 2000.
    let second = generate(&topic, &db, 1000, 35, &[]);
    let end = first.sent + second.sent;
    wait_for(
        "the partition read to its end",
        Duration::from_secs(60),
        || stored_offsets(&db.url, "lost").get(&0).copied() == Some(end as i64),
    );
    let restored: i64 = client
        .query_one(
            "SELECT count(*) FROM usage_events WHERE record_id = ANY($1)",
            &[&lost],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        restored,
        lost.len() as i64,
        "records read again were dropped as duplicates: {}",
        daemon.log_text()
    );
    stop_within(&mut daemon, Duration::from_secs(10));
}
