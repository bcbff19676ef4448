//! The API under load next to ingestion: a backlog consumed by a daemon with its default
//! pool sizes while fifty clients keep asking what a busy customer-care floor asks (a
//! customer's month-to-date usage and events, an event's explanation, which reads the
//! record back from the broker, the report filters, a report), and the report aggregates
//! are locked for a while, as a long refresh or a migration locks them, so that every
//! report request waits on Postgres as long as the lock lasts. The committers must not
//! lose their connections to the API: no batch fails, every record is stored once, the
//! API answers 429 beyond its cap and never 500.

use crate::helpers::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 50;
/// How long the report aggregates stay locked: longer than a committer waits for a
/// connection of the pipeline's pool (10 s).
const LOCKED_FOR: Duration = Duration::from_secs(25);

/// GET with HTTP/1.0: (status, body), or None when the connection fails.
fn get(port: u16, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, raw[end + 4..].to_vec()))
}

/// One client: round after round of drill-down requests until `done`; every answer's
/// status is counted in `seen` (0 for a failed connection). Told 429, it waits the
/// second `Retry-After` says, as a well-behaved client does.
fn client(
    port: u16,
    customers: Vec<i64>,
    done: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeMap<u16, u64>>>,
) {
    let count = |status: u16| {
        *seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status)
            .or_default() += 1;
        if status == 429 {
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    let mut round = 0usize;
    while !done.load(Ordering::Relaxed) {
        let id = customers[round % customers.len()];
        round += 1;
        let mut record = None;
        for path in [
            format!("/api/customers/{id}/usage?period=2026-09"),
            format!("/api/customers/{id}/events?period=2026-09&limit=100000"),
            "/api/filters".to_string(),
            "/api/reports/top_customers?period=2026-09&limit=100000".to_string(),
        ] {
            let answer = get(port, &path);
            count(answer.as_ref().map_or(0, |(s, _)| *s));
            if let Some((200, body)) = &answer {
                if path.contains("/events") {
                    let events: serde_json::Value =
                        serde_json::from_slice(body).unwrap_or_default();
                    record = events[0]["record_id"].as_str().map(String::from);
                }
            }
        }
        if let Some(r) = record {
            let answer = get(port, &format!("/api/events/{r}/explain"));
            count(answer.as_ref().map_or(0, |(s, _)| *s));
        }
    }
}

/// The sum of every sample of a metric family.
fn family_sum(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_api_clients_during_a_backlog_fail_no_batch_and_are_answered_429_never_500() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.apiload", 4).await;
    let report = generate(&topic, &db, 60_000, 67, &[]);
    let customers: Vec<i64> = db
        .client()
        .await
        .query(
            "SELECT customer_id FROM customers ORDER BY customer_id LIMIT 100",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!customers.is_empty());

    let group = format!("apiload-{}", suffix());
    let mut d = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: &group,
        database_url: &db.url,
        idle_secs: None,
        // The daemon's own refresh of the aggregates would wait on the lock too.
        extra: vec!["--report-refresh-secs".into(), "0".into()],
    });
    d.wait_up();
    let mut locker = db.client().await;
    let (locked, is_locked) = tokio::sync::oneshot::channel();
    let lock = tokio::spawn(async move {
        let tx = locker.transaction().await.unwrap();
        // Held until the end of the transaction: every report of a month reads it.
        tx.batch_execute("LOCK TABLE report_segment_agg IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let _ = locked.send(());
        tokio::time::sleep(LOCKED_FOR).await;
        tx.rollback().await.unwrap();
    });
    is_locked.await.unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (done, seen) = (done.clone(), seen.clone());
            // Each client starts with another customer.
            let mut mine = customers.clone();
            mine.rotate_left(i % customers.len());
            let port = d.http_port;
            std::thread::spawn(move || client(port, mine, done, seen))
        })
        .collect();

    let ends = end_offsets(&topic);
    let started = Instant::now();
    loop {
        if stored_offsets(&db.url, &group) == ends {
            break;
        }
        assert!(d.alive(), "the daemon died: {}", d.log_text());
        if started.elapsed() > Duration::from_secs(600) {
            done.store(true, Ordering::Relaxed);
            panic!(
                "the backlog was not consumed within 10 minutes; stored {:?} of {ends:?}; answers {:?}; log tail:\n{}",
                stored_offsets(&db.url, &group),
                seen.lock().unwrap(),
                tail(&d.log_text(), 30)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    lock.await.unwrap();
    for c in clients {
        c.join().expect("client thread");
    }
    let answers = seen.lock().unwrap().clone();
    let metrics = d.get("/metrics").expect("/metrics").1;
    let failures = family_sum(&metrics, "cdrflow_batch_failures_total");
    let restarts = family_sum(&metrics, "cdrflow_actor_restarts_total");
    eprintln!(
        "backlog of {} records consumed in {took:?} under {CLIENTS} API clients; answers by status: {answers:?}; batch failures {failures}, actor restarts {restarts}",
        report.sent
    );
    d.stop();

    assert_eq!(
        failures,
        0.0,
        "batches failed while the API was busy; log tail:\n{}",
        tail(&d.log_text(), 40)
    );
    assert_eq!(restarts, 0.0, "actors restarted");
    assert_eq!(
        answers.get(&500).copied().unwrap_or(0),
        0,
        "500s among {answers:?}"
    );
    assert_eq!(
        answers.get(&0).copied().unwrap_or(0),
        0,
        "failed connections among {answers:?}"
    );
    assert!(
        answers.get(&429).copied().unwrap_or(0) > 0,
        "no request was refused beyond the cap: {answers:?}"
    );
    assert!(
        answers.get(&200).copied().unwrap_or(0) > 0,
        "no request was served: {answers:?}"
    );

    let s = stats(&db.url, &group);
    let t = &s["totals"];
    assert_eq!(t["consumed"], report.sent, "consumed");
    assert_eq!(t["accepted"], report.expected.accepted, "accepted");
    assert_eq!(t["duplicates"], report.expected.duplicates, "duplicates");
    assert_eq!(t["suspense"], report.expected.suspense, "suspense");
    assert_eq!(s["balanced"], true);
    assert_eq!(s["stored_rows"]["usage_events"], report.expected.accepted);
    assert_stored_offsets_at_end(&s, &topic);
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
